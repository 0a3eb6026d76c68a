"""Build medseg's wheel, install it into a fresh venv outside the source tree, run the user's loop there.

    python scripts/wheel_check.py [--builder build|pip] [--deps-from VENV] [--quick] [--work DIR]

Steps (each printed with its command and seconds; a failing step stops with its output):

1. copy the files a build needs (pyproject.toml, setup.py, MANIFEST.in, README.md, medseg/, apps/,
   datasets/, models/) to WORK/src, so the build leaves nothing in the checkout;
2. build: ``python -m build`` (sdist, then the wheel from the sdist: checks MANIFEST.in too) or
   ``pip wheel --no-deps`` (faster); without network, ``--no-isolation`` / ``--no-build-isolation``;
3. a fresh venv WORK/venv; ``pip install --no-deps`` the wheel into it; dependencies come from
   ``--deps-from VENV`` (its site-packages joined through a .pth file: nothing is downloaded), or are
   installed from the index when it is not given;
4. in an empty folder WORK/empty: ``medseg models``, ``medseg models brain-tissue-unet`` (the card),
   ``medseg sample brain-tissue --out data``, and
   unless ``--quick``: ``medseg predict data/imagesTs --model brain-tissue-unet --out pred`` and
   ``medseg evaluate --pred pred --truth data/labelsTs``.

The wheel's size and its bundled files are printed; ``check_wheel`` returns them for the tests.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "medseg", "apps", "datasets", "models")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


@dataclass
class WheelCheck:
    """What the check saw.

    Attributes:
        wheel: the built wheel.
        bundled: ``{path inside the wheel: size}`` of the files under ``medseg/_bundled/``.
        venv: the fresh venv.
        outputs: ``{step name: stdout}`` of the medseg commands run in the empty folder.
        seconds: ``{step name: seconds}``.
    """

    wheel: Path
    bundled: dict[str, int] = field(default_factory=dict)
    venv: Path = Path()
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _run(name: str, command: list[str], cwd: Path, check: WheelCheck | None, log: bool) -> str:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = round(time.perf_counter() - started, 1)
    if check is not None:
        check.seconds[name] = seconds
    if log:
        print(f"$ {' '.join(command)}  ({seconds} s, in {cwd})", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def copy_sources(target: Path, root: Path = ROOT) -> Path:
    """The build inputs of ``root`` copied to ``target``."""
    target.mkdir(parents=True)
    for name in BUILD_INPUTS:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=_IGNORED)
        else:
            shutil.copy2(source, target / name)
    return target


def build_wheel(src: Path, dist: Path, builder: str, isolated: bool, log: bool = True,
                check: WheelCheck | None = None) -> Path:
    """Build the wheel of ``src`` into ``dist`` with ``python -m build`` or ``pip wheel``."""
    if builder == "build":
        command = [sys.executable, "-m", "build", "--outdir", str(dist), *([] if isolated else ["--no-isolation"]), "."]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                   *([] if isolated else ["--no-build-isolation"]), "."]
    _run("build", command, src, check, log)
    wheels = sorted(dist.glob("medseg-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"{dist}: expected one medseg wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def fresh_venv(path: Path, wheel: Path, deps_from: Path | None, log: bool = True,
               check: WheelCheck | None = None) -> Path:
    """A venv at ``path`` with the wheel installed; dependencies joined from ``deps_from`` or downloaded."""
    _run("venv", [sys.executable, "-m", "venv", "--without-pip", str(path)], path.parent, check, log)
    python = path / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    _run("install", install, path.parent, check, log)
    if deps_from is None:
        _run("install-deps", [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
             path.parent, check, log)
    else:
        purelib = _purelib(python)
        (purelib / "zz_medseg_deps.pth").write_text(str(_purelib(deps_from / "bin" / "python")) + "\n")
    return path


def _purelib(python: Path) -> Path:
    text = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return Path(text)


def run_loop(venv: Path, folder: Path, quick: bool, log: bool = True,
             check: WheelCheck | None = None) -> dict[str, str]:
    """The user's loop in ``folder`` (empty) with the venv's ``medseg``; ``{step: stdout}``."""
    medseg = str(venv / "bin" / "medseg")
    folder.mkdir(parents=True, exist_ok=True)
    steps = [("where", [str(venv / "bin" / "python"), "-c",
                        "import medseg.resources as r; print(r.__file__); print(r.resources_root())"]),
             ("models", [medseg, "models"]),
             ("card", [medseg, "models", "brain-tissue-unet"]),
             ("sample", [medseg, "sample", "brain-tissue", "--out", "data"])]
    if not quick:
        steps += [("predict", [medseg, "predict", "data/imagesTs", "--model", "brain-tissue-unet", "--out", "pred",
                               "--no-progress"]),
                  ("evaluate", [medseg, "evaluate", "--pred", "pred", "--truth", "data/labelsTs"])]
    outputs = {}
    for name, command in steps:
        outputs[name] = _run(name, command, folder, check, log)
        if log:
            print(outputs[name], end="", flush=True)
    return outputs


def bundled_files(wheel: Path) -> dict[str, int]:
    """``{name: size}`` of the wheel's ``medseg/_bundled/`` files."""
    with zipfile.ZipFile(wheel) as archive:
        return {i.filename: i.file_size for i in archive.infolist() if i.filename.startswith("medseg/_bundled/")}


def check_wheel(work: Path, *, builder: str = "pip", deps_from: Path | None = None, quick: bool = False,
                isolated: bool = False, log: bool = True) -> WheelCheck:
    """Copy, build, install into a fresh venv and run the loop under ``work`` (an empty folder)."""
    src = copy_sources(work / "src")
    check = WheelCheck(wheel=Path())
    check.wheel = build_wheel(src, work / "dist", builder, isolated, log, check)
    check.bundled = bundled_files(check.wheel)
    if log:
        size = check.wheel.stat().st_size
        print(f"wheel {check.wheel.name}: {size / 1e6:.2f} MB; bundled: "
              + ", ".join(f"{name[len('medseg/_bundled/'):]} ({bytes_} B)" for name, bytes_ in check.bundled.items()))
    check.venv = fresh_venv(work / "venv", check.wheel, deps_from, log, check)
    check.outputs = run_loop(check.venv, work / "empty", quick, log, check)
    return check


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: exit 0 when every step passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builder", choices=("build", "pip"), default="build",
                        help="python -m build (sdist then wheel; default) or pip wheel --no-deps")
    parser.add_argument("--isolated", action="store_true",
                        help="build in an isolated environment (downloads setuptools)")
    parser.add_argument("--deps-from", type=Path, metavar="VENV",
                        help="take the dependencies from this venv's site-packages instead of the index")
    parser.add_argument("--quick", action="store_true", help="models and sample only (no predict/evaluate)")
    parser.add_argument("--work", type=Path, help="an empty work folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        check_wheel(args.work, builder=args.builder, deps_from=args.deps_from, quick=args.quick,
                    isolated=args.isolated)
    else:
        with tempfile.TemporaryDirectory(prefix="medseg-wheel-") as work:
            check_wheel(Path(work), builder=args.builder, deps_from=args.deps_from, quick=args.quick,
                        isolated=args.isolated)
    print("wheel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
