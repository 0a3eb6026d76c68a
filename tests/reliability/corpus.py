"""Builders of bad or tricky scans: real files shipped by pydicom and nibabel, and series written then damaged.

Each builder takes an empty folder and returns the path to give medseg (a file or a folder).
The expected outcome of each is in ``test_bad_inputs.py``'s table.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
from pydicom.uid import generate_uid

from medseg.io.dicom_export import write_dicom_series
from medseg.types import SourceInfo, Volume

TESTS = Path(__file__).resolve().parents[1]
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
SHAPE = (6, 5, 4)  # (I, J, K): small enough to read in milliseconds
AXIAL = np.array([[-0.8, 0, 0, 10.0], [0, 0.9, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])


def pydicom_file(name: str) -> Path:
    """A test file shipped in pydicom's wheel."""
    return Path(pydicom.data.get_testdata_file(name))


def volume(affine: np.ndarray = AXIAL, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> Volume:
    """A one-channel int16 Volume with distinct random voxels on ``affine``."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 2000, size=(1, *shape)).astype(np.int16)
    return Volume(array=array, affine=np.asarray(affine, dtype=float), channel_names=("image",),
                  source=SourceInfo(path="", format="memory"))


def rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    """A 3x3 rotation about z then x."""
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


SAGITTAL = np.eye(4)
SAGITTAL[:3, :3] = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]]) @ np.diag([0.7, 0.8, 3.0])
SAGITTAL[:3, 3] = (40.0, 12.0, -8.0)
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = rotation(25.0, 15.0) @ np.diag([0.9, 0.9, 2.0])
OBLIQUE[:3, 3] = (-5.0, 7.5, 22.0)


def series(folder: Path, affine: np.ndarray = AXIAL, seed: int = 0, **kwargs) -> list[Path]:
    """A good MR series of ``volume(affine, seed=seed)`` in ``folder``; its files in k order."""
    return write_dicom_series(volume(affine, seed=seed), folder, **kwargs)


def edit(path: Path, **tags: object) -> None:
    """Set (or, with None, delete) tags of a DICOM file in place."""
    dataset = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            if keyword in dataset:
                delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(path)


def position(path: Path) -> np.ndarray:
    return np.array([float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient])


# --- DICOM: folders and files ------------------------------------------------------------

def non_dicom_in_folder(root: Path) -> Path:
    folder = root / "study"
    series(folder / "series")
    (folder / "notes.txt").write_text("scanned on Tuesday\n")
    (folder / "thumbs.db").write_bytes(np.random.default_rng(0).bytes(700))
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\n")
    return folder


def without_preamble(root: Path) -> Path:
    """Every slice rewritten as a bare implicit-VR dataset: no preamble, no DICM, no file meta."""
    files = series(root / "series")
    for path in files:
        dataset = pydicom.dcmread(path)
        del dataset.file_meta
        dataset.preamble = None
        pydicom.dcmwrite(path, dataset, implicit_vr=True, little_endian=True, enforce_file_format=False)
        assert path.read_bytes()[128:132] != b"DICM"
    return root / "series"


def truncated_pixel_data(root: Path) -> Path:
    files = series(root / "series")
    data = files[2].read_bytes()
    files[2].write_bytes(data[:-17])
    return root / "series"


def missing_transfer_syntax(root: Path) -> Path:
    """File meta without (0002,0010) in every slice: pydicom must infer the encoding."""
    files = series(root / "series")
    for path in files:
        dataset = pydicom.dcmread(path)
        del dataset.file_meta.TransferSyntaxUID
        dataset.save_as(path, implicit_vr=False, little_endian=True)
    return root / "series"


def real_missing_transfer_syntax(root: Path) -> Path:
    """pydicom's meta_missing_tsyntax.dcm (no TransferSyntaxUID, no image) beside a good series."""
    folder = root / "study"
    series(folder / "series")
    shutil.copy(pydicom_file("meta_missing_tsyntax.dcm"), folder / "meta_missing_tsyntax.dcm")
    return folder


def mr_small_series(root: Path, source: str, slices: int = 3) -> Path:
    """A series of ``slices`` copies of a pydicom MR_small variant, stacked 5 mm apart along the normal.

    The pixel data (compressed or not, any byte order) are kept as stored.
    """
    folder = root / source.replace(".dcm", "")
    folder.mkdir(parents=True)
    series_uid = generate_uid()
    for k in range(slices):
        dataset = pydicom.dcmread(pydicom_file(source))
        row = np.array([float(v) for v in dataset.ImageOrientationPatient[:3]])
        column = np.array([float(v) for v in dataset.ImageOrientationPatient[3:]])
        origin = np.array([float(v) for v in dataset.ImagePositionPatient])
        dataset.ImagePositionPatient = [round(float(v), 4) for v in origin + 5.0 * k * np.cross(row, column)]
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.InstanceNumber = k + 1
        if getattr(dataset, "file_meta", None) is not None:
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.save_as(folder / f"slice{k}.dcm")
    return folder


def invalid_geometry(tag: str, value: object) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        files = series(root / "series")
        edit(files[1], **{tag: value})
        return root / "series"

    build.__name__ = f"invalid_{tag}"
    return build


def two_series_in_one_folder(root: Path) -> Path:
    folder = root / "mixed"
    first = series(root / "a", seed=1, series_description="T1")
    second = series(root / "b", seed=2, series_description="T2")
    folder.mkdir()
    for n, path in enumerate(first + second):
        shutil.move(path, folder / f"IM{n:04d}")
    return folder


def two_echoes_one_series(root: Path) -> Path:
    first = series(root / "series", seed=1)
    uid = pydicom.dcmread(first[0]).SeriesInstanceUID
    second = series(root / "echo2", seed=2, series_uid=uid)
    for path in first:
        edit(path, EchoTime=10.0, EchoNumbers=1)
    for n, path in enumerate(second):
        edit(path, EchoTime=80.0, EchoNumbers=2, InstanceNumber=10 + n)
        shutil.move(path, root / "series" / f"echo2_{n}.dcm")
    return root / "series"


def localizer_in_series(root: Path) -> Path:
    files = series(root / "series")
    edit(files[0], ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    return root / "series"


def localizer_series_beside_main(root: Path) -> Path:
    """A 3-plane scout (its own series, orientations differ) beside the main series: one error, one scan."""
    folder = root / "study"
    series(folder / "main", seed=1)
    scout = series(folder / "scout", seed=2, series_description="3-plane loc")
    for path in scout:
        edit(path, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    edit(scout[1], ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    return folder


def missing_slice(root: Path) -> Path:
    files = write_dicom_series(volume(shape=(6, 5, 6)), root / "series")
    files[3].unlink()
    return root / "series"


def uneven_spacing(root: Path) -> Path:
    files = write_dicom_series(volume(shape=(6, 5, 6)), root / "series")
    moved = position(files[2]) + np.array([0.0, 0.0, 0.6])
    edit(files[2], ImagePositionPatient=[float(v) for v in moved])
    return root / "series"


def duplicate_positions(root: Path) -> Path:
    files = series(root / "series")
    dataset = pydicom.dcmread(files[1])
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.InstanceNumber = 99
    dataset.save_as(root / "series" / "copy_of_slice_2.dcm")
    return root / "series"


def gantry_tilt(root: Path) -> Path:
    files = write_dicom_series(volume(shape=(6, 5, 5)), root / "series", modality="CT")
    for k, path in enumerate(files):
        shifted = position(path) + np.array([0.0, k * 2.5 * np.tan(np.radians(12.0)), 0.0])
        edit(path, ImagePositionPatient=[float(v) for v in shifted], GantryDetectorTilt=12.0)
    return root / "series"


def orientation_changes(root: Path) -> Path:
    files = series(root / "series")
    edit(files[2], ImageOrientationPatient=[1, 0, 0, 0, 0.9848078, -0.1736482])
    return root / "series"


def sagittal(root: Path) -> Path:
    series(root / "series", affine=SAGITTAL)
    return root / "series"


def oblique(root: Path) -> Path:
    series(root / "series", affine=OBLIQUE)
    return root / "series"


def empty_slice_thickness(root: Path) -> Path:
    for path in series(root / "series"):
        edit(path, SliceThickness="", SpacingBetweenSlices=None)
    return root / "series"


def enhanced_multiframe(root: Path) -> Path:
    """An Enhanced MR object built from the series (frames in scrambled order)."""
    files = series(root / "series")
    path = root / "enhanced.dcm"
    _root_conftest()._enhanced_from_series(path, files, [2, 0, 3, 1])
    return path


def _root_conftest() -> ModuleType:
    """tests/conftest.py (the shared Enhanced MR builder), loaded by path: ``conftest`` is this folder's."""
    spec = importlib.util.spec_from_file_location("medseg_tests_root_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def non_images_among_images(root: Path) -> Path:
    """RTSTRUCT, SR, SEG and RT dose objects shipped by pydicom, in the series folder."""
    folder = root / "series"
    series(folder)
    for name in ("rtstruct.dcm", "test-SR.dcm", "liver_1frame.dcm", "rtdose_1frame.dcm"):
        shutil.copy(pydicom_file(name), folder / name)
    return folder


def rgb_secondary_capture(root: Path) -> Path:
    return _copy(pydicom_file("SC_rgb_small_odd.dcm"), root)


def ultrasound(root: Path) -> Path:
    return _copy(pydicom_file("examples_ybr_color.dcm"), root)


def single_slice_file(root: Path) -> Path:
    return _copy(pydicom_file("MR_small.dcm"), root)


def real_truncated_dicom(root: Path) -> Path:
    return _copy(pydicom_file("MR_truncated.dcm"), root)


def corrupt_header(root: Path) -> Path:
    """``DICM`` prefix and then garbage: the file claims to be DICOM."""
    path = root / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + b"garbage")
    return path


def dicomdir_tree(root: Path) -> Path:
    """pydicom's DICOMDIR test tree (several patients and series, some compressed)."""
    shutil.copytree(pydicom_file("DICOMDIR").parent, root / "dicomdir")
    return root / "dicomdir"


def _copy(source: Path, root: Path) -> Path:
    target = root / source.name
    shutil.copy(source, target)
    return target


# --- NIfTI ------------------------------------------------------------------------------

def nifti(path: Path, array: np.ndarray, affine: np.ndarray = AXIAL, qform: np.ndarray | None = None,
          sform_code: int = 1, qform_code: int = 1) -> Path:
    """Write ``array`` with explicit qform/sform and codes (nibabel)."""
    image = nib.Nifti1Image(array, None)
    image.set_sform(affine, code=sform_code)
    image.set_qform(affine if qform is None else qform, code=qform_code)
    nib.save(image, path)
    return path


def grid(shape: tuple[int, ...] = (8, 7, 6), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 20.0, size=shape).astype(np.float32)


def qform_sform_disagree(root: Path) -> Path:
    moved = AXIAL.copy()
    moved[:3, 3] += (0.0, 4.0, 0.0)
    return nifti(root / "disagree.nii.gz", grid(), AXIAL, qform=moved)


def sheared_sform(root: Path) -> Path:
    sheared = AXIAL.copy()
    sheared[0, 1] = 0.3
    return nifti(root / "sheared.nii.gz", grid(), sheared, qform_code=0)


def both_codes_zero(root: Path) -> Path:
    return nifti(root / "nocodes.nii.gz", grid(), sform_code=0, qform_code=0)


def terabyte_header(suffix: str) -> Callable[[Path], Path]:
    """A valid 348-byte header announcing 30000^3 float32 voxels (~108 TB), and 64 bytes of data."""
    def build(root: Path) -> Path:
        header = nib.Nifti1Header()
        header.set_data_shape((30000, 30000, 30000))
        header.set_data_dtype(np.float32)
        header.set_sform(AXIAL, code=1)
        header.set_qform(AXIAL, code=1)
        raw = header.binaryblock + b"\0" * 4 + b"\0" * 64
        path = root / f"huge{suffix}"
        path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
        return path

    build.__name__ = f"terabyte_header{suffix.replace('.', '_')}"
    return build


def within_cap_but_short(root: Path) -> Path:
    """A header announcing 500^3 float32 (500 MB, under the voxel cap) over a 1 kB file."""
    header = nib.Nifti1Header()
    header.set_data_shape((500, 500, 500))
    header.set_data_dtype(np.float32)
    header.set_sform(AXIAL, code=1)
    path = root / "short.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 1024)
    return path


def truncated(suffix: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = nifti(root / f"cut{suffix}", grid((20, 20, 20)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        return path

    build.__name__ = f"truncated{suffix.replace('.', '_')}"
    return build


def empty_nifti_file(root: Path) -> Path:
    path = root / "empty.nii.gz"
    path.write_bytes(b"")
    return path


def nan_inf_voxels(root: Path) -> Path:
    array = grid()
    array[1, 2, 3] = np.nan
    array[4, 4, 4] = np.inf
    return nifti(root / "naninf.nii.gz", array)


def four_d(root: Path) -> Path:
    return nifti(root / "four_d.nii.gz", grid((8, 7, 6, 3)))


def big_endian_nifti(root: Path) -> Path:
    path = root / "big_endian.nii"
    image = nib.Nifti1Image(grid(), None, header=nib.Nifti1Header().as_byteswapped(">"))
    image.set_sform(AXIAL, code=1)
    image.set_qform(AXIAL, code=1)
    nib.save(image, path)
    assert nib.load(path).header.endianness == ">"
    return path


def nibabel_file(name: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        return _copy(NIBABEL_DATA / name, root)

    build.__name__ = f"nibabel_{name.replace('.', '_')}"
    return build


def empty_folder(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def hidden_only_folder(root: Path) -> Path:
    (root / "hidden").mkdir()
    (root / "hidden" / ".DS_Store").write_bytes(b"\0" * 64)
    return root / "hidden"


def zip_archive(root: Path) -> Path:
    files = series(root / "series")
    path = root / "study.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in files:
            archive.write(file, f"../../escape/{file.name}")
    shutil.rmtree(root / "series")
    return path


def mask_and_scan(root: Path) -> tuple[Path, Path]:
    """A scan (8, 7, 6) and a mask (8, 7, 5) meant for it."""
    scan = nifti(root / "scan.nii.gz", grid())
    mask = nifti(root / "mask.nii.gz", (grid((8, 7, 5)) > 100).astype(np.uint8))
    return scan, mask


def relabelled_jpeg_lossless(root: Path) -> Path:
    """A JPEG-LS series whose TransferSyntaxUID says JPEG Lossless SV1 (pydicom ships no such file;
    without pylibjpeg-libjpeg or gdcm installed there is no decoder for that syntax)."""
    folder = mr_small_series(root, "MR_small_jpeg_ls_lossless.dcm")
    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
        dataset.save_as(path)
    return folder.rename(root / "relabelled_jpeg_lossless")
