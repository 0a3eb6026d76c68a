"""Library side of the review app (no Qt): display geometry, worklists, class tables, review logs.

Modules:
    display      the world convention shown in napari and the voxel reorientation that serves it
    class_table  per-class volume (mL), mean uncertainty, largest slice
    worklist     cases of a ``medseg predict`` output (or a study folder), most in need of review first
    review_log   saving corrected labels next to the prediction and the JSON review log
    sample       the bundled brain sample subject, built on demand into a cache folder
"""
