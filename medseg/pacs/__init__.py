"""Studies from a PACS and results back to it: DICOMweb (``dicomweb``), credentials files
(``credentials``), senders by target (``senders``), and the DICOM node (``node``, ``queue``, ``dimse``).

Nothing here knows about networks or napari: a study comes in as a local study folder, results go
out as DICOM files.
"""
