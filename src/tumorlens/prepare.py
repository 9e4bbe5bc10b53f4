"""From a file to the network's input: reading, the refusal statistics and preprocessing, without torch.

This is the CPU-heavy part of prediction (about 1.9 ms of a 256-px PNG's 3.3 ms with mirroring), so
`Predictor.predict_paths` runs it in worker processes. With ONNX Runtime each worker also runs the model on
the files it prepared (`model_outputs` on an `runtime.OrtSession` of the same exported graph), so the model
time is spread over the cores too and the main process only builds the records. The in-process path and the
workers call the same functions, so both give the same inputs bit for bit. This module must not import
torch: worker processes stay small and start fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .config import NoImageError, Preprocess, TumorlensError
from .data import die_with_parent, preprocess_array


@dataclass
class Prepared:
    """One frame ready for the model (`x`, `box`), or already decided (`status` error/rejected + `reason`)."""

    path: str
    where: dict[str, int] = field(default_factory=dict)
    x: np.ndarray | None = None
    box: tuple[int, int, int] | None = None
    status: str | None = None
    reason: str | None = None
    no_image: bool = False  # the error is a config.NoImageError (a DICOM object without an image)
    # the model's raw logits (K,) and pooled features (D,), when a worker ran the model (x is then dropped)
    z: np.ndarray | None = None
    f: np.ndarray | None = None


def model_outputs(run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray, mirror: bool,
                  chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, K) and pooled features (N, D) of preprocessed inputs (N, S, S), `run` called on at most `chunk`
    inputs at a time. With `mirror` both are the mean over each slice and its left-right mirror
    (`TrainConfig.flip_average`), computed in the same calls."""
    n = len(x)
    if mirror:
        x = np.concatenate([x, x[:, :, ::-1]])  # (N, S, S) -> (2N, S, S): the slices, then their mirrors
    step = chunk or max(len(x), 1)
    zs, fs = zip(*(run(x[i:i + step]) for i in range(0, len(x), step)))
    z, f = np.concatenate(zs), np.concatenate(fs)
    if mirror:
        return (z[:n] + z[n:]) / 2, (f[:n] + f[n:]) / 2
    return z, f


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
        return [Prepared(path, status="error", reason=str(e), no_image=isinstance(e, NoImageError))]
    return [prepare_frame(path, fr, pre, refuse) for fr in frames]


# ------------------------------------------------------------------------------- worker processes
_JOB: dict[str, Any] = {}
# files per task sent to a worker. Larger tasks keep the model's weights in cache across more calls: one worker's
# time per 256-px PNG was 3.77 ms at 16 files, 3.51 at 32 and 3.34 at 128 (mirrored, 1 thread), but end to end
# 128 gained nothing over 32 on 1,000 files (538 against 539 images/s, 2 workers), the last tasks leaving a
# core idle (throwaway timings, 2026-11-27)
FILES_PER_TASK = 32
MIN_FILES_PER_TASK = 4


def split_tasks(paths: list[str], workers: int, size: int = FILES_PER_TASK) -> list[list[str]]:
    """`paths` in consecutive tasks of `size` files, shrinking towards the end (guided scheduling: each task at
    most the files left / (2 x workers), never under MIN_FILES_PER_TASK), so the workers finish together
    instead of one core idling through the last full task while the other works."""
    tasks, i = [], 0
    while i < len(paths):
        n = max(MIN_FILES_PER_TASK, min(size, (len(paths) - i) // (2 * max(1, workers))))
        tasks.append(paths[i:i + n])
        i += n
    return tasks


def _init_worker(pre: Preprocess, refuse: bool, slice: int | None, onnx: bytes | None = None,
                 mirror: bool = False, chunk: int = 16) -> None:
    die_with_parent()
    session = None
    if onnx is not None:
        try:
            from .runtime import OrtSession

            session = OrtSession(onnx, threads=1)
        except Exception:  # noqa: BLE001 - without a session the main process runs the model instead
            session = None
    _JOB.update(pre=pre, refuse=refuse, slice=slice, session=session, mirror=mirror, chunk=chunk)


def prepare_in_worker(path: str) -> list[Prepared]:
    """`prepare_file` with the settings the pool's initializer stored; never raises."""
    try:
        return prepare_file(path, _JOB["pre"], _JOB["refuse"], _JOB["slice"])
    except Exception as e:  # noqa: BLE001 - a worker must answer for every file; the batch goes on
        return [Prepared(path, status="error", reason=f"{path}: unexpected error ({type(e).__name__}: {e})")]


def prepare_task(paths: list[str]) -> list[list[Prepared]]:
    """`prepare_in_worker` of each path, then, when the worker holds an ONNX Runtime session, the model on all
    their frames at once (their `z` and `f` filled in, `x` dropped); never raises."""
    done = [prepare_in_worker(p) for p in paths]
    session = _JOB.get("session")
    ready = [p for ps in done for p in ps if p.status is None]
    if session is not None and ready:
        try:
            z, f = model_outputs(session.run, np.stack([p.x for p in ready]), _JOB["mirror"], _JOB["chunk"])
        except Exception:  # noqa: BLE001 - the main process runs the model on these instead
            return done
        for p, zi, fi in zip(ready, z, f):
            p.z, p.f, p.x = zi, fi, None
    return done


def auto_workers(n_files: int) -> int:
    """Worker processes worth starting for `n_files` inputs: none for a few files (a pool costs ~50 ms),
    else one per core up to 4."""
    if n_files < 128:
        return 0
    return max(0, min(os.cpu_count() or 1, 4))


def pool(workers: int, pre: Preprocess, refuse: bool, slice: int | None, onnx: bytes | None = None,
         mirror: bool = False, chunk: int = 16):
    """A process pool whose workers prepare files (`pool.imap(prepare_task, lists_of_paths)`), and run the
    exported model `onnx` on them when given (mirror-averaged when `mirror`, `chunk` inputs per call).

    'fork' where the platform has it (starts in milliseconds; the workers never touch torch, whose thread
    pool does not survive a fork), else the platform's default.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ctx.Pool(workers, initializer=_init_worker, initargs=(pre, refuse, slice, onnx, mirror, chunk))
