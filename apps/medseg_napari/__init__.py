"""napari plugin for medseg (reader, writer, widgets). Qt lives only in this package."""
