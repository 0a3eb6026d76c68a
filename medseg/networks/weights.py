"""Reading torch files safely: tensors and plain data only (``torch.load(weights_only=True)``).

Shared by model folders (inference) and checkpoints (training), below both.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from medseg.errors import InputError


def torch_load_safely(path: Path, what: str, hint: str) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU; every failure is an InputError naming ``what``.

    A file holding pickled Python objects beyond tensors and plain data is refused (never unpickled).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            path,
            f"refused to load: the {what} holds pickled Python objects, not only tensors and data "
            f"({first_line}); loading it unsafely could run arbitrary code",
            hint,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise InputError(path, f"cannot read the {what} ({type(error).__name__}: {error})",
                         f"the file is damaged or not a torch file; {hint}") from None


def load_state_dict_safely(path: Path, what: str, hint: str) -> dict[str, torch.Tensor]:
    """``torch_load_safely``, then an InputError unless the file holds a state_dict (names -> tensors)."""
    state = torch_load_safely(path, what, hint)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(path, "not a state_dict (a mapping of parameter names to tensors)", hint)
    return state
