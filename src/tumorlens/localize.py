"""`tumorlens localize`: do the heatmaps point at the tumour? Measured on slices with expert masks.

Data: a folder in the layout of the figshare brain-tumour set (Cheng et al. 2015): `metadata.csv` with the
columns `image`, `mask` (paths relative to the folder), `class_name` and `cv_fold`, images (any size) and
binary mask PNGs of the same size. Only the folds the model never trained on are used: the test folds of
the checkpoint's split manifest (rows with split == 'test' whose group names `figshare-fold-<k>`, possibly
joined with '+'), unless `folds` says otherwise. Images go through exactly the Predictor's path:
draft decode at >= 4x the model size, `preprocess_array`, `explain_batch`, and the map is pasted back at
full resolution with the crop box scaled as `Predictor.predict_file` does.

Per image and map (metrics at the mask's full resolution):
  pointing    hit if the map's maximum lies within the mask dilated by 3% of the image side (Zhang et al.
              2018, with their 15-px tolerance expressed relative to a 512-px slice); an all-zero map misses;
  energy      share of the map's mass inside the mask (energy-based pointing game, Wang et al. 2020);
  iou, dice   of the map thresholded at its Otsu threshold (computed over the crop the network saw).
Summaries per class and overall: hit rates with Wilson 95% intervals, means with seeded bootstrap
(percentile, 2000 resamples) 95% intervals, and the mean mask-area fraction, the energy a map spread
uniformly over the image would put in the mask.

Baselines, each pasted through the same crop box: a seeded uniform random map; a centred Gaussian
(sigma = S/4) prior over the crop; and every method's maps from the same architecture with re-initialised
weights (the parameter-randomisation sanity check of Adebayo et al. 2018: a method whose maps survive
randomisation explains the architecture, not the learned weights). For the sanity check the trained and
randomised maps of each image are also compared directly (Spearman rank correlation and SSIM on the S x S
maps); it passes when the mean rank correlation is below 0.5.

The recommended method is the one with the highest pointing-game hit rate (ties: energy); its targets
(pointing >= 0.80, energy >= 3x the mean mask fraction, above every baseline) are checked in the JSON.

Research use only - not a medical device.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from .config import DISCLAIMER, TumorlensError
from .data import map_box, preprocess_array, read_gray
from .explain import METHODS, default_method, explain_batch, method_layers, overlay_png, paste_cam, supports
from .metrics import jsonable, wilson_ci
from .fileio import atomic_write_bytes

log = logging.getLogger(__name__)

POINTING_TOLERANCE = 0.03  # of the image side
BASELINES = ("random", "center")
SANITY_MAX_RANK_CORRELATION = 0.5
TARGETS = {"pointing_game": 0.80, "energy_over_mask_fraction": 3.0}
N_BOOT = 2000
METRICS = ("pointing", "energy", "iou", "dice")
_FOLD_RE = re.compile(r"figshare-fold-(\d+)")


# ------------------------------------------------------------------------------------------- folds
def held_out_folds(meta: dict[str, Any]) -> tuple[list[int], dict[int, int]]:
    """(figshare folds on the test side of the checkpoint's split, {fold: train/val rows carrying it}).

    A fold is 'test' if a test row's group names it; the second value counts rows of the other sides that
    name the same fold (non-zero means the fold is not fully held out, e.g. through a merged group).
    """
    manifest = (meta.get("split") or {}).get("manifest") or []
    test: set[int] = set()
    other: dict[int, int] = {}
    for row in manifest:
        if len(row) < 4:
            continue
        folds = {int(k) for k in _FOLD_RE.findall(str(row[3] or ""))}
        if row[2] == "test":
            test |= folds
        else:
            for f in folds:
                other[f] = other.get(f, 0) + 1
    return sorted(test), {f: other[f] for f in sorted(test) if other.get(f)}


def parse_folds(items: Iterable[str | int] | None) -> list[int] | None:
    """`['2', '3,5']` -> [2, 3, 5]; None stays None."""
    if items is None:
        return None
    out: set[int] = set()
    for it in items:
        for part in str(it).replace(",", " ").split():
            try:
                out.add(int(part))
            except ValueError:
                raise TumorlensError(f"--folds expects fold numbers, got {part!r}") from None
    return sorted(out)


# -------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Item:
    index: str
    image: Path
    mask: Path
    label: str
    fold: int


def read_items(root: str | os.PathLike) -> list[Item]:
    """Rows of `<root>/metadata.csv` as items (paths resolved against root)."""
    root = Path(root)
    meta = root / "metadata.csv"
    try:
        with open(meta, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise TumorlensError(f"{meta}: not found (expected the figshare layout: metadata.csv, images/, "
                             f"masks/)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TumorlensError(f"{meta}: cannot read ({e})") from None
    need = {"image", "mask", "class_name", "cv_fold"}
    if not rows or not need <= set(rows[0]):
        raise TumorlensError(f"{meta}: needs the columns {', '.join(sorted(need))}")
    items = []
    for i, r in enumerate(rows):
        try:
            fold = int(r["cv_fold"])
        except (TypeError, ValueError):
            raise TumorlensError(f"{meta}: row {i + 2} has cv_fold {r['cv_fold']!r}") from None
        items.append(Item(str(r.get("index") or i), root / r["image"], root / r["mask"],
                          r["class_name"].strip().lower(), fold))
    return items


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Binary mask (nonzero = tumour) at `shape`; a mask of another size is resized (nearest)."""
    try:
        with Image.open(path) as im:
            im.load()
            m = im.convert("L")
    except FileNotFoundError:
        raise TumorlensError(f"{path}: mask not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise TumorlensError(f"{path}: unreadable mask ({e})") from None
    if m.size != (shape[1], shape[0]):
        log.warning("%s: mask is %dx%d, image %dx%d; resized", path, m.size[0], m.size[1], shape[1], shape[0])
        m = m.resize((shape[1], shape[0]), Image.NEAREST)
    return np.asarray(m) > 0


def _image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size[1], im.size[0]


# ----------------------------------------------------------------------------------------- metrics
def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (maximises the between-class variance of a histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or v.max() <= v.min():
        return float(v.max()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    between = between[:-1]
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau (empty bins): take its middle
    k = int(best[len(best) // 2])
    return float(edges[k + 1])


@dataclass
class MaskInfo:
    mask: np.ndarray  # (H, W) bool
    rows: np.ndarray  # coordinates of the mask pixels
    cols: np.ndarray
    area: int
    tol: float  # pointing tolerance in pixels


def mask_info(mask: np.ndarray) -> MaskInfo:
    r, c = np.nonzero(mask)
    return MaskInfo(mask, r, c, int(r.size), POINTING_TOLERANCE * max(mask.shape))


def map_metrics(heat: np.ndarray, mi: MaskInfo, region: tuple[slice, slice] | None = None) -> dict[str, float]:
    """Pointing hit (0/1), energy in mask, IoU and Dice at Otsu of one full-resolution map.

    `region` (the crop box within the image) limits the Otsu histogram to the pixels the network saw;
    the map is zero elsewhere anyway.
    """
    total = float(heat.sum(dtype=np.float64))
    if total <= 0 or mi.area == 0:
        return {"pointing": 0.0, "energy": 0.0, "iou": 0.0, "dice": 0.0}
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    d2 = (mi.rows - r) ** 2 + (mi.cols - c) ** 2
    hit = float(d2.min() <= mi.tol ** 2)
    energy = float(heat[mi.mask].sum(dtype=np.float64)) / total
    region = region or (slice(None), slice(None))
    thr = otsu_threshold(heat[region])
    seg = heat > thr
    inter = int(np.count_nonzero(seg & mi.mask))
    n_seg = int(np.count_nonzero(seg))
    union = n_seg + mi.area - inter
    return {"pointing": hit, "energy": energy, "iou": inter / union if union else 0.0,
            "dice": 2 * inter / (n_seg + mi.area) if n_seg + mi.area else 0.0}


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), along the last axis of a 2-D array."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    for i, row in enumerate(a):
        order = np.argsort(row, kind="mergesort")
        s = row[order]
        boundaries = np.flatnonzero(np.diff(s)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [s.size]))
        ranks = np.repeat((starts + ends - 1) / 2.0, ends - starts)
        out[i, order] = ranks
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman rank correlation of two (N, ...) arrays; a constant row gives 0."""
    ra = _rank(np.asarray(a).reshape(len(a), -1))
    rb = _rank(np.asarray(b).reshape(len(b), -1))
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return np.divide((ra * rb).sum(1), den, out=np.zeros(len(ra)), where=den > 0)


def _box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k windows ('valid' positions) of (N, H, W), via cumulative sums."""
    c = np.cumsum(np.cumsum(np.pad(a, ((0, 0), (1, 0), (1, 0))), 1), 2)
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004; uniform k x k window, data range 1) of two (N, H, W) stacks."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ma, mb = _box_mean(a, k), _box_mean(b, k)
    va = _box_mean(a * a, k) - ma * ma
    vb = _box_mean(b * b, k) - mb * mb
    cov = _box_mean(a * b, k) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.reshape(len(s), -1).mean(1)


def bootstrap_ci(values: Sequence[float], rng: np.random.Generator, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1 or np.all(v == v[0]):
        return float(v[0]), float(v[0])
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // v.size)  # bound the index matrix's memory
    for i in range(0, n_boot, step):
        j = min(n_boot, i + step)
        means[i:j] = v[rng.integers(0, v.size, (j - i, v.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(values: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
    """Hit rate with Wilson CI for pointing, mean with bootstrap CI for the others."""
    hits = values["pointing"]
    n = int(hits.size)
    k = int(round(float(hits.sum())))
    out: dict[str, Any] = {"n": n}
    lo, hi = wilson_ci(k, n)
    out["pointing"] = {"rate": k / n if n else float("nan"), "hits": k, "ci95": [lo, hi]}
    for m in METRICS[1:]:
        v = values[m]
        out[m] = {"mean": float(v.mean()) if v.size else float("nan"), "ci95": list(bootstrap_ci(v, rng))}
    return out


# ---------------------------------------------------------------------------------------- baselines
def randomized_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture with every parameter (and BatchNorm statistic) re-initialised, seeded.

    The global torch RNG is left as it was.
    """
    rnd = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in rnd.modules():
            if m is not rnd and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return rnd.eval()


def center_prior(size: int, sigma_frac: float = 0.25) -> np.ndarray:
    """Isotropic Gaussian centred on the S x S crop, sigma = sigma_frac * S, peak 1."""
    g = np.arange(size, dtype=np.float32) + 0.5 - size / 2
    s = sigma_frac * size
    return np.exp(-(g[:, None] ** 2 + g[None, :] ** 2) / (2 * s * s)).astype(np.float32)


# -------------------------------------------------------------------------------------------- main
def _region(box: tuple[int, int, int], shape: tuple[int, int]) -> tuple[slice, slice]:
    top, left, side = box
    return (slice(max(top, 0), min(top + side, shape[0])), slice(max(left, 0), min(left + side, shape[1])))


def localize(checkpoint: Any, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
             folds: Sequence[int] | None = None, methods: Sequence[str] | None = None, target: str = "predicted",
             limit: int | None = None, n_examples: int = 6, seed: int = 0, batch: int = 64,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Measure how well each method's maps localise the masked tumours; write the results to `out_dir`.

    checkpoint: a `Predictor`, a `Checkpoint` or a checkpoint path. folds: None takes the test folds of the
    checkpoint's split (an error if it names none). target: 'predicted' explains each image's predicted
    class (what users see), 'true' its labelled class. limit: use at most this many images (spread evenly
    over the selected ones; for quick runs). methods: None takes every method the model supports, its
    default first. Returns the JSON document written to localization.json.
    """
    from .predict import Predictor

    t_start = time.perf_counter()
    if methods is not None:
        methods = list(dict.fromkeys(methods))
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise TumorlensError(f"unknown method(s) {', '.join(bad) or '(none)'} (expected {', '.join(METHODS)})")
    if target not in ("predicted", "true"):
        raise TumorlensError(f"target must be 'predicted' or 'true', got {target!r}")
    pred = checkpoint if isinstance(checkpoint, Predictor) else Predictor(checkpoint)
    model, pre, classes = pred.model, pred.pre, list(pred.classes)
    if methods is None:
        methods = list(dict.fromkeys([default_method(model), *(m for m in METHODS if supports(model, m))]))
    for m in methods:
        method_layers(model, m)  # a method the model cannot use is an error now, not after the first batch
    size = pre.size
    out = Path(out_dir)

    folds_overlap: dict[int, int] = {}
    if folds is None:
        folds, folds_overlap = held_out_folds(pred.ckpt.meta)
        fold_source = "checkpoint split (test side)"
        if not folds:
            raise TumorlensError("the checkpoint's split names no figshare test fold "
                                 "(groups 'figshare-fold-<k>'); pass --folds")
        if folds_overlap:
            log.warning("test fold(s) %s also hold train/val images of the split: %s", folds, folds_overlap)
    else:
        folds = sorted(set(int(f) for f in folds))
        fold_source = "given"
    items = [it for it in read_items(data_dir) if it.fold in set(folds)]
    if not items:
        raise TumorlensError(f"{data_dir}: no image in fold(s) {', '.join(map(str, folds))}")
    if limit is not None and limit < len(items):
        pick = np.unique(np.linspace(0, len(items) - 1, max(1, int(limit))).round().astype(int))
        items = [items[i] for i in pick]

    skipped: list[dict[str, str]] = []
    rng = np.random.default_rng(seed)
    rnd_model = randomized_copy(model, seed)
    center = center_prior(size)
    sources = methods + [f"{m}@randomized" for m in methods] + list(BASELINES)
    per_image: list[dict[str, Any]] = []
    sanity = {m: {"spearman": [], "ssim": []} for m in methods}
    examples: list[tuple[Item, np.ndarray, dict[str, float], str, float]] = []
    per_class_examples: dict[str, int] = {}

    def flush(buf: list[tuple[Item, np.ndarray, tuple[int, int, int], tuple[int, int], np.ndarray]]) -> None:
        if not buf:
            return
        x = torch.from_numpy(np.stack([b[1] for b in buf])).unsqueeze(1)
        cams: dict[str, np.ndarray] = {}
        probs = None
        tgt: Any = None
        if target == "true":
            tgt = [classes.index(b[0].label) for b in buf]
        for m in methods:
            cams[m], p = explain_batch(model, x, tgt, m)
            if probs is None:
                probs = p
                if tgt is None:
                    tgt = p.argmax(1).tolist()  # the randomised model explains the trained one's class
        for m in methods:
            cams[f"{m}@randomized"], _ = explain_batch(rnd_model, x, tgt, m)
            sanity[m]["spearman"].extend(spearman(cams[m], cams[f"{m}@randomized"]).tolist())
            sanity[m]["ssim"].extend(ssim(cams[m], cams[f"{m}@randomized"]).tolist())
        cams["random"] = rng.random((len(buf), size, size), dtype=np.float32)
        cams["center"] = np.broadcast_to(center, (len(buf), size, size))
        for i, (it, _, box, shape, mask) in enumerate(buf):
            mi = mask_info(mask)
            region = _region(box, shape)
            k = int(probs[i].argmax())
            row: dict[str, Any] = {"index": it.index, "class": it.label, "fold": it.fold,
                                   "predicted": classes[k], "correct": classes[k] == it.label,
                                   "target": classes[tgt[i]], "mask_fraction": mi.area / mask.size}
            heat0 = None
            for s in sources:
                heat = paste_cam(cams[s][i], box, shape)
                if s == methods[0]:
                    heat0 = heat
                for name, v in map_metrics(heat, mi, region).items():
                    row[f"{s}.{name}"] = v
            per_image.append(row)
            if len(examples) < n_examples and per_class_examples.get(it.label, 0) < max(1, n_examples // 3):
                per_class_examples[it.label] = per_class_examples.get(it.label, 0) + 1
                examples.append((it, heat0, {m: row[f"{methods[0]}.{m}"] for m in METRICS}, classes[k],
                                 float(probs[i, k])))

    buf: list = []
    total = len(items)
    for n, it in enumerate(items):
        try:
            if it.label not in classes:
                raise TumorlensError(f"{it.image}: class {it.label!r} is not one of the model's ({', '.join(classes)})")
            gray = read_gray(it.image, draft=4 * size)
            shape = _image_shape(it.image)
            mask = read_mask(it.mask, shape)
            if not mask.any():
                raise TumorlensError(f"{it.mask}: empty mask")
            x, box = preprocess_array(gray, pre)
            box_full = map_box(box, shape[0] / gray.shape[0])
        except (TumorlensError, OSError) as e:
            msg = str(e) if isinstance(e, TumorlensError) else f"{it.image}: {e}"
            log.warning("skipped %s", msg)
            skipped.append({"index": it.index, "reason": msg})
            continue
        buf.append((it, x, box_full, shape, mask))
        if len(buf) >= batch:
            flush(buf)
            buf = []
            if progress:
                progress(n + 1, total)
    flush(buf)
    if progress:
        progress(total, total)
    if not per_image:
        raise TumorlensError(f"{data_dir}: no usable image in fold(s) {', '.join(map(str, folds))} "
                             f"({len(skipped)} skipped)")

    # ---- summaries
    boot_rng = np.random.default_rng([seed, 1])
    labels = np.array([r["class"] for r in per_image])
    groups = {"overall": np.ones(len(per_image), bool)}
    for c in classes:
        if (labels == c).any():
            groups[c] = labels == c
    mask_frac = np.array([r["mask_fraction"] for r in per_image])
    correct = np.array([r["correct"] for r in per_image], dtype=float)
    results: dict[str, Any] = {}
    for s in sources:
        vals = {m: np.array([r[f"{s}.{m}"] for r in per_image], dtype=np.float64) for m in METRICS}
        results[s] = {g: summarize({m: v[sel] for m, v in vals.items()}, boot_rng) for g, sel in groups.items()}
        for g, sel in groups.items():
            mf = float(mask_frac[sel].mean())
            results[s][g]["energy_over_mask_fraction"] = results[s][g]["energy"]["mean"] / mf if mf else None
    summary_groups = {}
    for g, sel in groups.items():
        k = int(correct[sel].sum())
        summary_groups[g] = {"n": int(sel.sum()), "mask_fraction_mean": float(mask_frac[sel].mean()),
                             "mask_fraction_ci95": list(bootstrap_ci(mask_frac[sel], boot_rng)),
                             "accuracy": k / int(sel.sum()), "accuracy_ci95": list(wilson_ci(k, int(sel.sum())))}

    sanity_out = {}
    for m in methods:
        sp = np.array(sanity[m]["spearman"])
        ss = np.array(sanity[m]["ssim"])
        sanity_out[m] = {"spearman_mean": float(sp.mean()), "spearman_ci95": list(bootstrap_ci(sp, boot_rng)),
                         "ssim_mean": float(ss.mean()), "ssim_ci95": list(bootstrap_ci(ss, boot_rng)),
                         "passes": bool(sp.mean() < SANITY_MAX_RANK_CORRELATION)}

    def key(m: str) -> tuple[float, float]:
        o = results[m]["overall"]
        return o["pointing"]["rate"], o["energy"]["mean"]

    best = max(methods, key=key)
    mf_all = summary_groups["overall"]["mask_fraction_mean"]
    verdicts = {}
    for m in methods:
        o = results[m]["overall"]
        rivals = list(BASELINES) + [f"{m}@randomized"]
        verdicts[m] = {
            "pointing_game_ge_target": o["pointing"]["rate"] >= TARGETS["pointing_game"],
            "energy_ge_3x_mask_fraction": o["energy"]["mean"] >= TARGETS["energy_over_mask_fraction"] * mf_all,
            "above_all_baselines": all(o["pointing"]["rate"] > results[b]["overall"]["pointing"]["rate"]
                                       and o["energy"]["mean"] > results[b]["overall"]["energy"]["mean"]
                                       for b in rivals),
            "sanity_check_passes": sanity_out[m]["passes"],
        }
        verdicts[m]["all"] = all(verdicts[m].values())

    ckpt = pred.ckpt
    doc: dict[str, Any] = {
        "disclaimer": DISCLAIMER,
        "model": {"path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256,
                  "classes": classes, "input_size": size},
        "data": {"dir": str(Path(data_dir)), "folds": list(folds), "fold_source": fold_source,
                 "folds_also_in_train_or_val": {str(k): v for k, v in folds_overlap.items()},
                 "n_images": len(per_image), "n_skipped": len(skipped), "skipped": skipped[:50],
                 "limit": limit},
        "settings": {"methods": methods, "target": target, "pointing_tolerance": POINTING_TOLERANCE,
                     "threshold": "otsu over the crop box", "bootstrap_resamples": N_BOOT, "seed": seed,
                     "center_prior_sigma": "0.25 * input size", "baselines": list(BASELINES),
                     "randomized": "all parameters and BatchNorm statistics re-initialised (seeded)"},
        "groups": summary_groups,
        "results": results,
        "sanity_check": {"criterion": f"mean Spearman rank correlation of trained vs randomised maps "
                                      f"< {SANITY_MAX_RANK_CORRELATION}", "methods": sanity_out},
        "targets": {**TARGETS, "above_all_baselines": True},
        "recommended_method": best,
        "default_method": default_method(model),
        "verdicts": verdicts,
        "seconds": 0.0,
    }

    out.mkdir(parents=True, exist_ok=True)
    _write_csv(per_image, sources, out / "localization_images.csv")
    _plot_bars(results, sources, mf_all, out / "localization.png")
    ex_dir = out / "examples"
    for it, heat, met, label, p in examples:
        try:
            gray = read_gray(it.image)
            mask = read_mask(it.mask, gray.shape)
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{it.index}_{it.label}")
            title = (f"{Path(it.image).name}: true {it.label}, predicted {label} ({p:.2f})\n"
                     f"{methods[0]} map; pointing {'hit' if met['pointing'] else 'miss'}, "
                     f"energy in mask {met['energy']:.2f}, IoU {met['iou']:.2f}")
            overlay_png(gray, heat, ex_dir / f"{stem}.png", title, mask=mask)
        except TumorlensError as e:
            log.warning("no example overlay: %s", e)
    doc["examples"] = sorted(p.name for p in ex_dir.glob("*.png")) if ex_dir.exists() else []
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(out / "localization.json", text.encode("utf-8"))
    log.info("localization of %d images (%s) written to %s", len(per_image), ", ".join(methods), out)
    return doc


def _write_csv(rows: list[dict[str, Any]], sources: list[str], path: Path) -> None:
    cols = ["index", "class", "fold", "predicted", "correct", "target", "mask_fraction"] + [
        f"{s}.{m}" for s in sources for m in METRICS]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    buf.write(f"# {DISCLAIMER}\n")
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _plot_bars(results: dict[str, Any], sources: list[str], mask_fraction: float, path: Path) -> Path:
    from .plots import _new_figure, _save

    fig = _new_figure(9.0, 4.2)
    labels = [s.replace("@randomized", "\n(random weights)") for s in sources]
    xs = np.arange(len(sources))
    for j, (metric, field, title) in enumerate((("pointing", "rate", "pointing game (hit rate)"),
                                                 ("energy", "mean", "energy inside the mask"))):
        ax = fig.add_subplot(1, 2, j + 1)
        vals = np.array([results[s]["overall"][metric][field] for s in sources], dtype=float)
        ci = np.array([results[s]["overall"][metric]["ci95"] for s in sources], dtype=float)
        err = np.abs(np.stack([vals - ci[:, 0], ci[:, 1] - vals]))
        colors = ["tab:blue" if "@" not in s and s not in BASELINES else "0.6" for s in sources]
        ax.bar(xs, vals, yerr=err, color=colors, capsize=3)
        if metric == "pointing":
            ax.axhline(TARGETS["pointing_game"], ls="--", color="tab:red", lw=1, label="target 0.80")
        else:
            ax.axhline(mask_fraction, ls=":", color="black", lw=1, label="mask fraction")
            ax.axhline(TARGETS["energy_over_mask_fraction"] * mask_fraction, ls="--", color="tab:red", lw=1,
                       label="3x mask fraction")
        ax.set_xticks(xs, labels, rotation=60, ha="right", fontsize=7)
        top = 1.0 if metric == "pointing" else max(np.nanmax(ci[:, 1]), 3 * mask_fraction) * 1.25
        ax.set_ylim(0, min(1.0, top) if np.isfinite(top) and top > 0 else 1.0)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
