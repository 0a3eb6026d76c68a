"""One case from one file per modality: nnU-Net / Decathlon ``CASE_0000.nii.gz``, ``CASE_0001.nii.gz`` ...

A model with C modalities reads a case either from one C-channel file (4D NIfTI, vector NRRD/MHA)
or from C co-registered files named ``CASE_0000`` .. ``CASE_{C-1:04d}`` in one folder (the channel
order of ``dataset.json``'s ``modality``). ``group_channel_files`` turns the discovered image files of
such a set into one source whose ``files`` are the channels in order (``medseg.io.read.read_source``
stacks them after checking their grids). A set with a channel missing stays as separate files, so its
files fail alone with the reader's channel-count error rather than being guessed at.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from medseg.io.discover import ScanSource
from medseg.types import source_name

IMAGE_KINDS = ("nifti", "nrrd", "mha")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<index>\d{4})$")


def group_channel_files(sources: Sequence[ScanSource], channels: int) -> list[ScanSource]:
    """``sources`` with each complete ``CASE_0000 .. CASE_{channels-1}`` set of image files as one source.

    Args:
        sources: as ``medseg.io.discover`` found them (order kept: a group takes its first file's place).
        channels: the model's modality count; with 1 nothing is grouped.

    Returns:
        The sources; a grouped one has ``path`` = its ``_0000`` file, ``files`` = the channel files in
        order and ``description`` = ``CASE``.
    """
    if channels < 2:
        return list(sources)
    groups: dict[tuple[Path, str, str], dict[int, ScanSource]] = {}
    for source in sources:
        key_index = _channel_key(source)
        if key_index is not None:
            groups.setdefault(key_index[0], {})[key_index[1]] = source
    complete = {key: members for key, members in groups.items() if sorted(members) == list(range(channels))}
    grouped: list[ScanSource] = []
    for source in sources:
        key_index = _channel_key(source)
        if key_index is None or key_index[0] not in complete:
            grouped.append(source)
        elif key_index[1] == 0:
            members = complete[key_index[0]]
            files = tuple(Path(members[i].path) for i in range(channels))
            problem = next((m.problem for m in members.values() if m.problem), "")
            grouped.append(dataclasses.replace(source, files=files, description=key_index[0][1], problem=problem))
    return grouped


def _channel_key(source: ScanSource) -> tuple[tuple[Path, str, str], int] | None:
    """((folder, case, kind), channel index) of a ``CASE_0000``-style image file, else None."""
    if source.kind not in IMAGE_KINDS or source.files:
        return None
    match = _CHANNEL.match(source_name(source.path))
    if match is None:
        return None
    path = Path(source.path)
    return (path.parent, match["case"], source.kind), int(match["index"])
