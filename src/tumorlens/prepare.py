"""From a file to the network's input: reading, the refusal statistics and preprocessing, without torch.

This is the CPU-heavy half of prediction (about 2 ms of a 256-px PNG's 2.5 ms), so `Predictor` can run it
in worker processes while the main process runs the model. The in-process path and the workers call the
same functions, so both give the same inputs bit for bit. This module must not import torch: worker
processes stay small and start fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import Preprocess, TumorlensError
from .data import preprocess_array


@dataclass
class Prepared:
    """One frame ready for the model (`x`, `box`), or already decided (`status` error/rejected + `reason`)."""

    path: str
    where: dict[str, int] = field(default_factory=dict)
    x: np.ndarray | None = None
    box: tuple[int, int, int] | None = None
    status: str | None = None
    reason: str | None = None


def prepare_frame(path: str, fr: Any, pre: Preprocess, refuse: bool) -> Prepared:
    """Refusal statistics (when `refuse`), then preprocessing, of one `readers.Frame`."""
    if refuse:
        from .refusal import check_image

        reason = check_image(fr.gray, fr.info)
        if reason:
            return Prepared(path, dict(fr.where), status="rejected", reason=reason)
    try:
        x, box = preprocess_array(fr.gray, pre)
    except TumorlensError as e:
        return Prepared(path, dict(fr.where), status="error", reason=f"{path}: {e}")
    return Prepared(path, dict(fr.where), x=x, box=box)


def prepare_file(path: str, pre: Preprocess, refuse: bool, slice: int | None = None) -> list[Prepared]:
    """Every frame of one file, prepared; a file that cannot be read gives one error."""
    from .readers import read_frames

    try:
        frames = read_frames(path, name=path, slice=slice, draft=4 * pre.size)
    except TumorlensError as e:
        return [Prepared(path, status="error", reason=str(e))]
    return [prepare_frame(path, fr, pre, refuse) for fr in frames]


# ------------------------------------------------------------------------------- worker processes
_JOB: dict[str, Any] = {}


def _init_worker(pre: Preprocess, refuse: bool, slice: int | None) -> None:
    _JOB.update(pre=pre, refuse=refuse, slice=slice)


def prepare_in_worker(path: str) -> list[Prepared]:
    """`prepare_file` with the settings the pool's initializer stored; never raises."""
    try:
        return prepare_file(path, _JOB["pre"], _JOB["refuse"], _JOB["slice"])
    except Exception as e:  # noqa: BLE001 - a worker must answer for every file; the batch goes on
        return [Prepared(path, status="error", reason=f"{path}: unexpected error ({type(e).__name__}: {e})")]


def auto_workers(n_files: int) -> int:
    """Worker processes worth starting for `n_files` inputs: none for a few files (a pool costs ~50 ms),
    else one per core up to 4 (the model runs in the parent meanwhile)."""
    if n_files < 128:
        return 0
    return max(0, min(os.cpu_count() or 1, 4))


def pool(workers: int, pre: Preprocess, refuse: bool, slice: int | None):
    """A process pool whose workers prepare files (`pool.imap(prepare_in_worker, paths, chunksize)`).

    'fork' where the platform has it (starts in milliseconds; the workers never touch torch, whose thread
    pool does not survive a fork), else the platform's default.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ctx.Pool(workers, initializer=_init_worker, initargs=(pre, refuse, slice))

