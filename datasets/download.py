"""Fetching a missing dataset through tonic's own downloader, with one clear error when it cannot."""
from __future__ import annotations

import contextlib
from pathlib import Path

from spikelab.errors import DatasetNotFoundError


def download_with_tonic(tonic_class, root: Path, train: bool, instructions: str) -> None:
    """Let ``tonic_class(save_to=root, train=train)`` download and extract a split into ``root/<class name>``.

    tonic skips the network when its archive is already there with the right md5 and only extracts
    it. Any failure (no network, a read-only ``root``, a bad archive) raises one
    :class:`DatasetNotFoundError` made of ``instructions`` and the cause; folders tonic created and left
    empty are removed again.
    """
    created = [folder for folder in (root / tonic_class.__name__, root) if not folder.exists()]
    try:
        tonic_class(save_to=str(root), train=train)
    except Exception as err:  # URLError, OSError, or whatever a blocked network raises
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds while empty
        raise DatasetNotFoundError(f"{instructions} (automatic download failed: {type(err).__name__}: {err})") from err
