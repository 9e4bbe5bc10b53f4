"""Training: AdamW with warm-up and cosine decay, early stopping on `val`, resumable, deterministic on CPU.

Determinism and resumption share one trick: every epoch draws its shuffling, augmentation and dropout
from generators seeded by (seed, epoch), so the state saved at the end of an epoch is all a resumed run
needs to continue exactly as the uninterrupted one would have.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .fileio import atomic_write_bytes, atomic_write_text
from .augment import augment, equalize_batch, head_depth
from .checkpoint import Checkpoint, save_checkpoint
from .config import CLASSES, TrainConfig, TumorlensError, flat_settings
from .data import Dataset
from .model import build_model
from .outliers import outlier_batch, outlier_loss
from .split import SplitRow

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
CKPT_FILE = "model.safetensors"


@dataclass(frozen=True)
class SplitData:
    """Network inputs of one split side: x (N, 1, S, S) float32, y (N,), paths."""

    x: torch.Tensor
    y: torch.Tensor
    paths: list[str]
    masks: torch.Tensor | None = None  # (N, 1, S, S) tumour masks in [0, 1] (masks.py), for mask guidance
    known: torch.Tensor | None = None  # (N,) bool: which images have a mask


def check_split_data(data: SplitData, side: str, size: int, num_classes: int) -> None:
    """A one-line TumorlensError when `data` is not what training reads: x a float32 tensor (N, 1, size, size)
    in [0, 1] as `Predictor` preprocesses, y an int64 tensor (N,) of class indices (Python API users build
    SplitData by hand; torch's own errors surfaced deep inside augmentation, or not at all for 0..255 pixels)."""
    x, y = data.x, data.y
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TumorlensError(f"{side} data: x and y must be torch tensors (torch.from_numpy), not "
                             f"{type(x).__name__} and {type(y).__name__}")
    if x.dtype != torch.float32 or x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
        raise TumorlensError(f"{side} data: x must be float32 of shape (N, 1, {size}, {size}), got {x.dtype} "
                             f"{tuple(x.shape)}")
    if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
        raise TumorlensError(f"{side} data: y must be int64 of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
    if len(x) and (float(x.min()) < 0.0 or float(x.max()) > 1.0 or not bool(torch.isfinite(x).all())):
        raise TumorlensError(f"{side} data: pixel values must lie in [0, 1] as preprocessing gives them, got "
                             f"{float(x.min()):g}..{float(x.max()):g}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise TumorlensError(f"{side} data: labels must be class indices 0..{num_classes - 1}, got "
                             f"{int(y.min())}..{int(y.max())}")
    m, known = data.masks, data.known
    if m is not None:  # 0..255 masks trained silently, and masks without `known` failed deep in train (an audit)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(x.shape) or not m.is_floating_point():
            raise TumorlensError(f"{side} data: masks must be a float tensor of x's shape {tuple(x.shape)}, got "
                                 f"{getattr(m, 'dtype', type(m).__name__)} {tuple(getattr(m, 'shape', ()))}")
        if len(m) and (float(m.min()) < 0.0 or float(m.max()) > 1.0 or not bool(torch.isfinite(m).all())):
            raise TumorlensError(f"{side} data: mask values must lie in [0, 1], got {float(m.min()):g}.."
                                 f"{float(m.max()):g}")
        if not isinstance(known, torch.Tensor) or known.dtype != torch.bool or tuple(known.shape) != (len(x),):
            raise TumorlensError(f"{side} data: masks need `known`, a bool tensor ({len(x)},) saying which images "
                                 f"have a mask")


def select(ds: Dataset, rows: list[SplitRow], side: str, check_sha: bool = True,
           masks: tuple[Any, Any] | None = None) -> SplitData:
    """The images of `ds` that `rows` put on `side`; a missing or changed file is an error.

    masks: (masks (N, S, S), known (N,)) for all of `ds` (masks.dataset_masks), to attach to the selection."""
    idx = ds.index()
    chosen = [r for r in rows if r.split == side]
    take, missing, changed = [], [], []
    for r in chosen:
        i = idx.get(r.path)
        if i is None:
            missing.append(r.path)
        elif check_sha and r.sha256 and ds.sha256[i] != r.sha256:
            changed.append(r.path)
        else:
            take.append(i)
    if missing:
        raise TumorlensError(f"{ds.root}: {len(missing)} file(s) of the split's {side} part are missing or "
                             f"unreadable, e.g. {missing[0]}")
    if changed:
        raise TumorlensError(f"{ds.root}: {len(changed)} file(s) changed since the split was made "
                             f"(sha256 differs), e.g. {changed[0]}")
    labels = [r.label for r in chosen]
    x = torch.from_numpy(ds.images[take]).unsqueeze(1)  # (N, S, S) -> (N, 1, S, S)
    y = torch.tensor([CLASSES.index(l) for l in labels], dtype=torch.long)
    if masks is None:
        return SplitData(x, y, [ds.entries[i].path for i in take])
    m = torch.from_numpy(masks[0][take]).unsqueeze(1)  # (N, S, S) -> (N, 1, S, S)
    return SplitData(x, y, [ds.entries[i].path for i in take], m, torch.from_numpy(masks[1][take]))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to 1% of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    out = [model(x[i:i + batch].contiguous(memory_format=torch.channels_last)) for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0, len(CLASSES))


def _evaluate(model, data: SplitData) -> tuple[float, float]:
    logits = predict_logits(model, data.x)
    loss = F.cross_entropy(logits, data.y).item()
    acc = (logits.argmax(1) == data.y).float().mean().item()
    return loss, acc


def mask_loss(seg: list[torch.Tensor], masks: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean over heads of the per-position binary cross-entropy between each head's tumour logits and the
    mask area-averaged to its resolution, over the images with a known mask (no-tumour: all zero).

    Deeply supervised features (Lee et al. 2015) that mark the tumour are what LayerCAM multiplies by the
    class gradient, so the classifier's evidence can be located where the tumour is.
    """
    w = known.float().view(-1, 1, 1, 1)
    if w.sum() == 0:
        return seg[0].sum() * 0.0
    total = seg[0].new_zeros(())
    for s in seg:
        t = F.adaptive_avg_pool2d(masks, s.shape[-2:])  # (B, 1, S, S) -> (B, 1, h, w), soft targets
        bce = F.binary_cross_entropy_with_logits(s, t, reduction="none")
        total = total + (bce * w).sum() / (w.sum() * s.shape[-1] * s.shape[-2])
    return total / len(seg)


def _mix(x, m, known, alpha: float, g: torch.Generator):
    """Mixup of a batch with a permutation of itself: (x, masks, known, weight, partner indices).

    The weight comes from Beta(alpha, alpha) via two Gamma draws of a NumPy generator seeded from `g`, so a
    resumed run mixes exactly like an uninterrupted one. A mixed mask is known only where both masks are.
    """
    rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=g)))
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)  # the first image dominates, so train accuracy stays readable against y
    partner = torch.randperm(x.shape[0], generator=g)
    x = lam * x + (1 - lam) * x[partner]
    if m is not None:
        m = lam * m + (1 - lam) * m[partner]
        known = known & known[partner]
    return x, m, known, lam, partner


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def listed_in(ds: Dataset, data: SplitData, names: set[str]) -> np.ndarray:
    """(N,) bool: the images of `data` (a selection of `ds`) that `names` lists by sha256 or dataset path."""
    idx = ds.index()
    return np.array([ds.sha256[idx[p]] in names or p in names for p in data.paths], dtype=bool)


def _data_identity(train_data: SplitData, val_data: SplitData, guided: bool) -> dict[str, Any]:
    """What a resumed run must train on as the interrupted one did: its parts (paths and labels, hashed) and
    whether tumour masks guide it. A run resumed without its masks, or on another split when the run folder's
    split.csv was gone, had gone on silently to weights that match neither recipe (an audit)."""
    import hashlib

    h = hashlib.sha256()
    for d in (train_data, val_data):
        h.update("\n".join(d.paths).encode("utf-8", "surrogateescape") + b"\0")
        h.update(d.y.numpy().astype(np.int64).tobytes())
    known = int(train_data.known.sum()) if guided and train_data.known is not None else 0
    return {"parts": h.hexdigest(), "mask_guided": bool(guided), "masks_known": known}


def _check_same_data(st: dict[str, Any], now: dict[str, Any], out: Path) -> None:
    was = st.get("data")
    if not isinstance(was, dict):  # a state file written before the check: nothing to compare
        return
    if was.get("parts") != now["parts"]:
        raise TumorlensError(f"{out}: --resume needs the train and val images of the interrupted run; these differ "
                             f"(another split, or the dataset changed)")
    if (was.get("mask_guided"), was.get("masks_known")) != (now["mask_guided"], now["masks_known"]):
        def say(d: dict[str, Any]) -> str:
            return f"guided by {d.get('masks_known')} tumour masks" if d.get("mask_guided") else "without masks"
        raise TumorlensError(f"{out}: --resume needs the tumour masks of the interrupted run: it trained "
                             f"{say(was)}, now {say(now)} (check the dataset's mask folder)")


def _flock(fd: int) -> bool:
    """Take an exclusive advisory lock on `fd` without waiting; False when another process holds it."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _busy_error(out: Path) -> TumorlensError:
    return TumorlensError(f"{out}: another training is writing to this run folder; wait for it to end or choose "
                          f"another --out")


_LOCKS = os.name == "posix"  # flock (fcntl); elsewhere (Windows) runs are not locked


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """Hold the run folder for one training at a time: two trainings into one --out both said "wrote
    model.safetensors", the second over the first (an audit). An advisory lock on a hidden file, which goes
    when the run ends."""
    if not _LOCKS:
        yield
        return
    lock = out / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock(fd):
            raise _busy_error(out)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _busy(out: Path) -> bool:
    """Whether a training holds `out` now (its `_run_lock`)."""
    if not _LOCKS:
        return False
    try:
        fd = os.open(out / ".lock", os.O_RDWR)
    except OSError:  # no lock file: no training there
        return False
    try:
        return not _flock(fd)
    finally:
        os.close(fd)  # closing releases a lock this call took


def _damaged(state_path: Path, why: str) -> TumorlensError:
    return TumorlensError(f"{state_path}: damaged resume state ({why}); delete it to start the run over")


def _load_state(state_path: Path) -> dict[str, Any]:
    """The resume state of an interrupted run. A damaged file (garbage, empty, cut short) is one TumorlensError
    naming it, not an unpickling traceback: state files are written atomically, so this means another program
    or a disk fault changed it."""
    try:
        st = torch.load(state_path, weights_only=True)
    except OSError as e:
        raise TumorlensError(f"{state_path}: cannot read resume state ({e.strerror or e})") from None
    except EOFError:
        raise _damaged(state_path, "empty or cut short") from None
    except Exception as e:  # pickle.UnpicklingError, RuntimeError (zip archive), ...: torch's text is pages long
        raise _damaged(state_path, f"not a PyTorch file: {type(e).__name__}") from None
    if not isinstance(st, dict) or "config" not in st:
        raise _damaged(state_path, "not a tumorlens training state")
    return st


def _check_same_config(st: dict[str, Any], cfg: TrainConfig, out: Path, state_path: Path) -> None:
    if st["config"] != json.dumps(cfg.to_dict(), sort_keys=True):
        raise TumorlensError(f"{out}: --resume needs the same configuration as the interrupted run; "
                             f"differs: {_config_changes(st['config'], cfg, state_path)}")


def _config_changes(stored: str, cfg: TrainConfig, state_path: Path) -> str:
    """'lr 0.003 -> 0.01, epochs 40 -> 20': the settings in which `cfg` differs from a stored state's config."""
    try:
        old = flat_settings(json.loads(stored))
    except (TypeError, ValueError, AttributeError):
        raise _damaged(state_path, "its configuration is unreadable") from None
    new = flat_settings(json.loads(json.dumps(cfg.to_dict())))  # tuples as the stored lists
    diff = [f"{k} {json.dumps(old.get(k, '(none)'))} -> {json.dumps(new.get(k, '(none)'))}"
            for k in sorted(set(old) | set(new)) if old.get(k, "(none)") != new.get(k, "(none)")]
    return ", ".join(diff) or "the stored configuration's text"


def check_run_dir(out: Path, resume: bool, cfg: TrainConfig | None = None, held: bool = False) -> None:
    """Refuse a run folder that would lose work: a finished run, or an unfinished one without --resume; and a
    --resume whose state file is damaged or (given `cfg`) whose settings differ. The CLI calls it before
    loading any data, so the error comes at once. `held`: this process holds the run's lock (`_run_lock`)."""
    state_path = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise TumorlensError(f"{out}: is a file, not a run folder; choose another --out")
    for parent in out.parents:  # said before the data are decoded, and plainly (it was "Not a directory")
        if parent.exists():
            if not parent.is_dir():
                raise TumorlensError(f"{out}: cannot create the run folder: {parent} is a file; choose another --out")
            break
    if not held and _busy(out):  # before "holds an unfinished run", which a run still writing also holds
        raise _busy_error(out)
    if (out / CKPT_FILE).exists() and not state_path.exists():
        raise TumorlensError(f"{out}: already holds a finished run"
                             + ("; there is nothing to resume" if resume else "") + "; choose another --out")
    if state_path.exists() and not resume:
        raise TumorlensError(f"{out}: holds an unfinished run; continue it with --resume or choose another --out")
    if resume and not state_path.exists():
        raise TumorlensError(f"{out}: nothing to resume (no {STATE_FILE})")
    if resume:
        st = _load_state(state_path)  # a damaged state is said now too, not after the data are loaded
        if cfg is not None:
            _check_same_config(st, cfg, out, state_path)


def train(cfg: TrainConfig, train_data: SplitData, val_data: SplitData, out_dir: str | os.PathLike,
          resume: bool = False, meta: dict[str, Any] | None = None,
          on_batch: Callable[[int, int, float, float], None] | None = None,
          on_epoch: Callable[[dict], None] | None = None, fit_without: dict[str, Any] | None = None) -> Path:
    """Train, keep the best model by validation accuracy (ties: lower loss), write the run directory.

    Returns the path of the best checkpoint. `on_batch(epoch, batch, loss, acc)` and `on_epoch(row)` let
    the caller draw progress. Raises KeyboardInterrupt through, with the last finished epoch saved.
    `fit_without`: {'train': keep mask, 'val': keep mask, 'excluded': note} - images (CT slices of a set sold as
    MRI, `--not-mri`) that the abstention and refusal fits leave out. Fitted here, before the checkpoint is
    written once: fitted afterwards, an interrupted refit had left a checkpoint that looked finished.
    """
    threads = torch.get_num_threads()
    rng = torch.random.get_rng_state()
    try:
        return _train(train_data, val_data, cfg, out_dir, resume, meta, on_batch, on_epoch, fit_without)
    finally:
        torch.set_num_threads(threads)  # the caller's setting is back, however the run ended
        torch.random.set_rng_state(rng)  # and the caller's random stream (the run seeds its own; an audit)


def _train(train_data: SplitData, val_data: SplitData, cfg: TrainConfig, out_dir: str | os.PathLike,
           resume: bool, meta: dict[str, Any] | None, on_batch: Callable[[int, int, float, float], None] | None,
           on_epoch: Callable[[dict], None] | None, fit_without: dict[str, Any] | None = None) -> Path:
    for side, data in (("train", train_data), ("val", val_data)):
        check_split_data(data, side, cfg.preprocess.size, cfg.model.num_classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _run_lock(out):
        return _train_in(train_data, val_data, cfg, out, resume, meta, on_batch, on_epoch, fit_without)


def _train_in(train_data: SplitData, val_data: SplitData, cfg: TrainConfig, out: Path, resume: bool,
              meta: dict[str, Any] | None, on_batch: Callable[[int, int, float, float], None] | None,
              on_epoch: Callable[[dict], None] | None, fit_without: dict[str, Any] | None) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state_path = out / STATE_FILE
    check_run_dir(out, resume, held=True)
    if len(train_data.y) == 0:
        raise TumorlensError("the split has no training images")
    if cfg.seg_weight > 0 and cfg.model.seg_blocks <= 0 and not cfg.model.gate:
        raise TumorlensError("seg_weight > 0 needs a mask head: model.seg_blocks > 0 or model.gate=true")
    guided = cfg.seg_weight > 0 and train_data.masks is not None
    meta = dict(meta or {})
    if guided:
        k = train_data.known
        meta["mask_guidance"] = {"used": True, "seg_weight": cfg.seg_weight, **meta.get("mask_guidance", {}),
                                 "train_images_with_mask": int(k.sum()),
                                 "train_tumour_masks": int((k & (train_data.y != CLASSES.index("notumor"))).sum())}
    if cfg.seg_weight > 0 and not guided:
        log.info("no tumour masks given: training without mask guidance")  # recorded in the checkpoint
        meta.setdefault("mask_guidance", {"used": False, "reason": "no tumour masks for this dataset"})

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.preprocess.size).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Weight averaging (Polyak & Juditsky 1992; as in timm's ModelEmaV2): the average, buffers included so
    # BatchNorm statistics match its weights, is what gets validated, kept as best and saved.
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema > 0 else None)
    judged = ema.module if ema is not None else model  # the network validation scores and the run keeps
    n = len(train_data.y)
    steps_per_epoch = max(1, n // cfg.batch_size)  # drop the last partial batch (BatchNorm on 1 image)
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    history: list[dict] = []
    best = {"acc": -1.0, "loss": math.inf, "epoch": -1, "state": None}
    start_epoch, bad = 0, 0
    train_seconds = 0.0
    identity = _data_identity(train_data, val_data, guided)
    if resume:  # check_run_dir made sure the state file is there
        st = _load_state(state_path)
        _check_same_config(st, cfg, out, state_path)
        _check_same_data(st, identity, out)
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            if ema is not None:
                ema.load_state_dict(st["ema"])
            history, best, bad, start_epoch = st["history"], st["best"], st["bad"], st["epoch"] + 1
            train_seconds = st["train_seconds"]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).splitlines() or [""])[0][:100]
            raise _damaged(state_path, f"{type(e).__name__} {first}".strip()) from None
        log.info("resuming after epoch %d", start_epoch)

    use_val = len(val_data.y) > 0
    # skull stripping reads each image's head depth; one pass over the training set instead of one per batch
    depth = (torch.cat([head_depth(train_data.x[i:i + 1024]) for i in range(0, n, 1024)]).to(torch.uint8)
             if cfg.augment and cfg.strip > 0 else None)
    for epoch in range(start_epoch, cfg.epochs):
        if use_val and bad >= cfg.patience:
            break
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout
        g = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch) + 1)  # order + augmentation
        perm = torch.randperm(n, generator=g)
        model.train()
        tot_loss, tot_ok, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = train_data.x[idx], train_data.y[idx]
            m = train_data.masks[idx] if guided else None
            if cfg.augment:  # the masks, when there are any, follow the images' geometry
                aug = augment(x, g, masks=m, turn=cfg.turn, contrast=cfg.contrast, sequence=cfg.sequence,
                              strip=cfg.strip, depth=None if depth is None else depth[idx], t2=cfg.t2)
                x, m = aug if m is not None else (aug, m)
                if cfg.preprocess.equalize:  # the inputs prediction will see: equalised after the intensity changes
                    x = equalize_batch(x)
            known = train_data.known[idx] if guided else None
            lam, partner = 1.0, None
            if cfg.mixup > 0:
                x, m, known, lam, partner = _mix(x, m, known, cfg.mixup, g)
            n_in = len(y)
            if cfg.outliers > 0:  # outlier exposure (outliers.py): generated non-MRI images in the same pass
                x = torch.cat([x, outlier_batch(max(1, n_in // 4), x.shape[-1], g)])
            x = x.contiguous(memory_format=torch.channels_last)
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + b, total, warmup, cfg.lr)
            logits, seg = model.forward_train(x)
            if cfg.outliers > 0:
                oe = cfg.outliers * outlier_loss(logits[n_in:])
                logits, seg = logits[:n_in], [s_[:n_in] for s_ in seg]
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if partner is not None:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y[partner],
                                                                label_smoothing=cfg.label_smoothing)
            if guided:
                loss = loss + cfg.seg_weight * mask_loss(seg, m, known)
            if cfg.outliers > 0:
                loss = loss + oe
            if not torch.isfinite(loss):  # before the step: the state file keeps the last finite epoch
                raise TumorlensError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower lr (now "
                                     f"{cfg.lr}) and start over"
                                     + (f": delete {state_path} or choose another --out" if state_path.exists()
                                        else ""))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            tot_loss += loss.item() * len(y)
            tot_ok += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if on_batch:
                on_batch(epoch, b, tot_loss / seen, tot_ok / seen)
        row = {"epoch": epoch + 1, "train_loss": tot_loss / seen, "train_acc": tot_ok / seen,
               "lr": opt.param_groups[0]["lr"]}
        if use_val:
            row["val_loss"], row["val_acc"] = _evaluate(judged, val_data)
        # a finite loss can still leave weights of inf or nan (weight decay run away, an overflow in BatchNorm's
        # statistics): that epoch is not saved, so the state file keeps the last sound one
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row.get("val_loss", 0.0))
                and all(bool(torch.isfinite(t).all()) for t in judged.state_dict().values() if t.is_floating_point())):
            raise TumorlensError(f"{out}: training diverged at epoch {epoch + 1} (train loss {row['train_loss']:.3g}"
                                 + (f", val loss {row['val_loss']:.3g}" if use_val else "") + "; the weights are "
                                 f"no longer finite); lower lr (now {cfg.lr:g}) or weight_decay (now "
                                 f"{cfg.weight_decay:g}) and start over"
                                 + (f": delete {state_path} or choose another --out" if state_path.exists() else ""))
        train_seconds += time.perf_counter() - t0
        row["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(row)
        score_acc = row.get("val_acc", row["train_acc"])
        score_loss = row.get("val_loss", row["train_loss"])
        if score_acc > best["acc"] or (score_acc == best["acc"] and score_loss < best["loss"]):
            best = {"acc": score_acc, "loss": score_loss, "epoch": epoch + 1,
                    "state": {k: v.clone() for k, v in judged.state_dict().items()}}
            bad = 0
        else:
            bad += 1
        _atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "history": history,
                            "ema": ema.state_dict() if ema is not None else None,
                            "best": best, "bad": bad, "epoch": epoch, "train_seconds": train_seconds,
                            "config": json.dumps(cfg.to_dict(), sort_keys=True), "data": identity}, state_path)
        _write_history(history, out / "history.csv")
        if on_epoch:
            on_epoch(row)

    model.load_state_dict(best["state"])
    model.eval()
    meta.update({"history": history, "best_epoch": best["epoch"], "train_seconds": round(train_seconds, 1),
                 "threads": torch.get_num_threads()})
    if use_val:
        meta["val_accuracy"] = best["acc"]
        meta["calibration"] = fit_calibration(Checkpoint(model, cfg, CLASSES, meta), val_data.x[:, 0].numpy(),
                                              val_data.y.numpy())
        # every trained model, not only the bundled one, gets its abstention threshold and feature-distance
        # refusal, fitted on this run's own train and val parts (benchmarks/build_model.py refits them for the
        # bundled model without the Kaggle set's CT slices)
        if len(train_data.y) >= 10 and len(val_data.y) >= 10:
            from .refusal import answer_rules

            kt = torch.as_tensor(fit_without["train"]) if fit_without else slice(None)
            kv = torch.as_tensor(fit_without["val"]) if fit_without else slice(None)
            meta.update(answer_rules(Checkpoint(model, cfg, CLASSES, meta), train_data.x[kt, 0].numpy(),
                                     val_data.x[kv, 0].numpy(), val_data.y[kv].numpy(),
                                     y_train=train_data.y[kt].numpy()))
            if fit_without:
                meta["refusal"]["excluded"] = dict(fit_without["excluded"])
        else:
            log.info("too few images for the abstention and refusal fits (%d train, %d val; 10 each needed): "
                     "this model answers every input that passes the image checks", len(train_data.y),
                     len(val_data.y))
    ckpt = save_checkpoint(out / CKPT_FILE, model, cfg, meta)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    state_path.unlink(missing_ok=True)
    return ckpt


def fit_calibration(ck: Checkpoint, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
    """meta['calibration'] for a checkpoint: its temperature fitted on `val` (preprocessed (N, S, S) inputs).

    The logits come from a `Predictor` on the checkpoint, so the temperature is fitted on exactly what
    prediction computes (mirror averaging included).
    """
    from .metrics import fit_temperature
    from .predict import Predictor

    logits = Predictor(ck, refuse=False, backend="torch").logits(x_val)
    return {"temperature": fit_temperature(logits, y_val), "fitted_on": "val", "n": int(len(y_val)),
            "flip_average": bool(ck.config.flip_average)}


def calibrate(ckpt_path: str | os.PathLike, x_val: np.ndarray, y_val: np.ndarray) -> Path:
    """`fit_calibration` for a saved checkpoint, written in place (a float16 file is fitted on its rounded
    weights)."""
    from .checkpoint import load_checkpoint

    ck = load_checkpoint(ckpt_path)
    meta = {**ck.meta, "calibration": fit_calibration(ck, x_val, y_val)}
    # weights loaded from a float16 file hold float16 values, so saving them as float32 loses nothing
    return save_checkpoint(ckpt_path, ck.model, ck.config, meta, tuple(ck.classes))


def _write_history(history: list[dict], path: Path) -> None:
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def split_manifest(rows: list[SplitRow]) -> list[list[str]]:
    """Compact manifest stored in the checkpoint: [path, label, split, group, sha256] per image."""
    return [[r.path, r.label, r.split, r.group, r.sha256] for r in rows]
