"""Checkpoints: written atomically, read without ever running code from the file.

A checkpoint is a dict of tensors and plain data (see :data:`KEYS`): weights, optimiser,
scheduler and float16 loss-scaler state, random-number-generator states, the epoch, the model's name and
architecture (:mod:`spikelab.spec`), the run configuration, the metrics so far, and the local rules' state
(``local`` mode; None otherwise). It is read with
``torch.load(weights_only=True)``, which refuses anything that would run code when unpickled.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError

FORMAT = "spikelab-checkpoint-v1"
KEYS = ("format", "epoch", "model_name", "model_spec", "model_state", "optimizer_state",
        "scheduler_state", "scaler_state", "rng_state", "config", "metrics", "local_rules")


def save_checkpoint(path, checkpoint: dict) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **checkpoint}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path) -> dict:
    """Read a checkpoint safely; raise CheckpointError for anything that is not one."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint file, or use sl.load(run_dir)")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path (a run folder holds best.pt and last.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} was refused: it holds objects that would run code when loaded, so it is not a "
            f"spikelab checkpoint (only tensors and plain data are accepted). Detail: {str(error).splitlines()[0]}"
        ) from None
    except Exception as error:  # torch raises several types for files that are not zip/pickle archives
        raise CheckpointError(f"{path} is not a spikelab checkpoint (unreadable as a torch file: {error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a spikelab checkpoint (no '{FORMAT}' marker)")
    return checkpoint


def capture_rng_state() -> dict:
    """Python, NumPy and torch generator states as tensors and plain data."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(pos),
        "numpy_gauss": [int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load(path, model=None):
    """A trained model back from a run folder (its ``best.pt``, else ``last.pt``) or a checkpoint file.

    The architecture is rebuilt from the checkpoint, its time step ``dt`` (ms) included; for a custom model class
    that spikelab cannot describe, pass an untrained instance as ``model``. The model comes back in eval mode, with
    the checkpoint's ``model_name``, ``config``, ``epoch`` and ``metrics`` in ``model.run_info``.
    """
    from ..spec import build

    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    checkpoint = load_checkpoint(path)
    if model is None:
        if checkpoint["model_spec"] is None:
            raise CheckpointError(f"{path} holds weights of a custom model class: pass model=YourModel(...) to load()")
        model = build(checkpoint["model_spec"])
    try:
        model.load_state_dict(checkpoint["model_state"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the weights do not fit the given model ({str(error).splitlines()[0]})") from None
    model.eval()
    if hasattr(model, "dt") and model.dt is None:   # runs saved before the model carried its time step
        model.dt = (((checkpoint["config"] or {}).get("run") or {}).get("binning") or {}).get("dt")
    model.run_info = {key: checkpoint[key] for key in ("model_name", "config", "epoch", "metrics")}
    model.run_info["checkpoint"] = str(path)
    return model
