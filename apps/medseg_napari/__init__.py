"""napari plugin for medseg (reader, writer, sample data, Segment / Review / Activations docks).

Qt lives only in this package; the logic it shows is in ``medseg.review`` and ``medseg.inference``.
World convention of every layer: LPS millimetres, axes (S, P, L) (``medseg.review.display``).
"""
