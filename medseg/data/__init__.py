"""Data sets: Decathlon datalists and the bundled sample data sets built from installed packages.

Modules:
    decathlon       read/write ``dataset.json`` (``read_datalist``, ``write_dataset_json``)
    sample_config   frozen definitions of the sample data sets (``datasets/*.yaml``)
    template        the MNI ICBM152 2009a template shipped in nilearn's wheel, as tissue labels
    brain_sample    synthetic brain-tissue subjects made from the template
    ct_phantom      synthetic CT-like abdominal phantoms (Hounsfield units)
    build           ``build_sample(definition, out_dir)``: the whole data set, idempotent
    splits          patient-level train / validation / test splits
    datasets        MONAI datasets with caching
"""
