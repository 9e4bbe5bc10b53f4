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

The metrics, their summaries and the verdicts are computed in `tumorlens.locmetrics`.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from .config import DISCLAIMER, TumorlensError
from .data import map_box, preprocess_array, read_gray
from .explain import METHODS, default_method, explain_batch, method_layers, overlay_png, paste_cam, supports
from .metrics import jsonable
from .fileio import StagedFolder, atomic_write_bytes
from .locmetrics import (BASELINES, METRICS, N_BOOT, POINTING_TOLERANCE, SANITY_MAX_RANK_CORRELATION, TARGETS,
                         map_metrics, mask_info, spearman, ssim, summarize_localization)
from .locmetrics import otsu_threshold  # noqa: F401 - re-exported: the tests import it from here

log = logging.getLogger(__name__)

_FOLD_RE = re.compile(r"figshare-fold-(\d+)")


# ------------------------------------------------------------------------------------------- folds
def _fold_sides(meta: dict[str, Any]) -> tuple[set[int], dict[int, int]]:
    """(figshare folds named by test rows of the checkpoint's split manifest, {fold: train/val rows naming it})."""
    test: set[int] = set()
    other: dict[int, int] = {}
    for row in (meta.get("split") or {}).get("manifest") or []:
        if len(row) < 4:
            continue
        folds = {int(k) for k in _FOLD_RE.findall(str(row[3] or ""))}
        if row[2] == "test":
            test |= folds
        else:
            for f in folds:
                other[f] = other.get(f, 0) + 1
    return test, other


def held_out_folds(meta: dict[str, Any]) -> tuple[list[int], dict[int, int]]:
    """(figshare folds on the test side of the checkpoint's split, {fold: train/val rows carrying it}).

    A fold is 'test' if a test row's group names it; the second value counts rows of the other sides that
    name the same fold (non-zero means the fold is not fully held out, e.g. through a merged group).
    """
    test, other = _fold_sides(meta)
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
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which hid the first column's name
        with open(meta, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except FileNotFoundError:
        raise TumorlensError(f"{meta}: not found (expected the figshare layout: metadata.csv, images/, "
                             f"masks/)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TumorlensError(f"{meta}: cannot read ({e})") from None
    need = {"image", "mask", "class_name", "cv_fold"}
    if not need <= set(reader.fieldnames or ()):
        raise TumorlensError(f"{meta}: needs the columns {', '.join(sorted(need))}")
    if not rows:
        raise TumorlensError(f"{meta}: has a header but no rows")
    items = []
    for i, r in enumerate(rows):
        short = [k for k in sorted(need) if not (r.get(k) or "").strip()]
        if short:  # a row cut short gave AttributeError on None (an audit)
            raise TumorlensError(f"{meta}: row {i + 2} has no {', '.join(short)}")
        try:
            fold = int(r["cv_fold"])
        except (TypeError, ValueError):
            raise TumorlensError(f"{meta}: row {i + 2} has cv_fold {r['cv_fold']!r}") from None
        items.append(Item(str(r.get("index") or i), root / r["image"], root / r["mask"],
                          r["class_name"].strip().lower(), fold))
    return items


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Binary mask (nonzero = tumour) at `shape`; a mask of another resolution but the same proportions is
    resized (nearest). A mask of other proportions cannot be aligned with its image: stretching it would score
    the heatmap against the wrong pixels, so it is a TumorlensError (the slice is skipped with that reason)."""
    try:
        with Image.open(path) as im:
            im.load()
            m = im.convert("L")
    except FileNotFoundError:
        raise TumorlensError(f"{path}: mask not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise TumorlensError(f"{path}: unreadable mask ({e})") from None
    if m.size != (shape[1], shape[0]):
        (mw, mh), (iw, ih) = m.size, (shape[1], shape[0])
        if abs((mw / mh) / (iw / ih) - 1.0) > 0.01:
            raise TumorlensError(f"{path}: mask is {mw}x{mh} pixels but its image {iw}x{ih}: other proportions, "
                                 f"so the two cannot be aligned")
        log.info("%s: mask is %dx%d, image %dx%d; resized", path, mw, mh, iw, ih)
        m = m.resize((iw, ih), Image.NEAREST)
    mask = np.asarray(m) > 0
    # a mask over most of the image outlines no tumour (an all-white file, an inverted mask): every map would
    # 'hit' it, so it would count as a success of any method. The largest figshare tumour covers 8% of its slice
    share = float(mask.mean()) if mask.size else 0.0
    if share > MAX_MASK_SHARE:
        raise TumorlensError(f"{path}: mask covers {100 * share:.0f}% of its image, more than any tumour outline "
                             f"({100 * MAX_MASK_SHARE:.0f}% at most; inverted or blank mask?)")
    return mask


MAX_MASK_SHARE = 0.5


def _image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size[1], im.size[0]


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

    from .split import check_seed

    t_start = time.perf_counter()
    check_seed(seed)  # -1 and 2**64 ended in numpy's ValueError after the work (an audit)
    if limit is not None and int(limit) < 1:
        raise TumorlensError(f"--limit must be 1 or more images, got {limit}")
    if methods is not None:
        methods = list(dict.fromkeys(methods))
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise TumorlensError(f"unknown method(s) {', '.join(bad) or '(none)'} (expected {', '.join(METHODS)})")
    if target not in ("predicted", "true"):
        raise TumorlensError(f"target must be 'predicted' or 'true', got {target!r}")
    pred = checkpoint if isinstance(checkpoint, Predictor) else Predictor(checkpoint)
    model = pred.model
    if methods is None:
        methods = list(dict.fromkeys([default_method(model), *(m for m in METHODS if supports(model, m))]))
    for m in methods:
        method_layers(model, m)  # a method the model cannot use is an error now, not after the first batch

    items, folds, fold_source, folds_overlap = _select_items(pred, data_dir, folds, limit)
    # the outputs land together (fileio.StagedFolder), and an --out that cannot be a folder fails now, not after
    # the measurement: a rerun into the same folder had left the first run's example overlays beside the new
    # document, and an interrupted one a new CSV and plot beside the old document (an audit)
    with StagedFolder(out_dir, OUTPUTS, folders=("examples",)) as stage:
        run = _measure(pred, items, methods, target, n_examples, seed, batch, progress)
        if not run.per_image:
            raise TumorlensError(f"{data_dir}: no usable image in fold(s) {', '.join(map(str, folds))} "
                                 f"({len(run.skipped)} skipped)")
        summary = summarize_localization(run.per_image, run.sources, run.methods, run.classes, run.sanity, seed)
        doc = _document(pred, run, summary, target=target, seed=seed, limit=limit,
                        data={"dir": str(Path(data_dir)), "folds": list(folds), "fold_source": fold_source,
                              "folds_also_in_train_or_val": {str(k): v for k, v in folds_overlap.items()}})
        _write_outputs(stage.stage, doc, run, summary, t_start)
        stage.publish()
    return doc


def _select_items(pred: Any, data_dir: str | os.PathLike, folds: Sequence[int] | None,
                  limit: int | None) -> tuple[list[Item], list[int], str, dict[int, int]]:
    """(items of the chosen folds, at most `limit` spread evenly; the folds; where they came from; the
    train/val rows that also name a fold, when the folds come from the checkpoint's split)."""
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
        # folds chosen by hand may be ones the model trained on: say so, as evaluate does for its test images
        _, other = _fold_sides(pred.ckpt.meta)
        folds_overlap = {f: other[f] for f in folds if other.get(f)}
        if folds_overlap:
            log.warning("fold(s) %s hold images of the model's own training/validation data (%s rows): the "
                        "scores are inflated", ", ".join(map(str, folds_overlap)),
                        ", ".join(f"fold {k}: {v}" for k, v in folds_overlap.items()))
    every = read_items(data_dir)
    absent = sorted(set(folds) - {it.fold for it in every})
    if absent and fold_source == "given" and len(absent) < len(set(folds)):
        # the run went on with the folds that exist, and its document listed the others too (an audit)
        raise TumorlensError(f"{data_dir}: no fold {', '.join(map(str, absent))} in metadata.csv (it has folds "
                             f"{', '.join(map(str, sorted({it.fold for it in every})))})")
    items = [it for it in every if it.fold in set(folds)]
    if not items:
        raise TumorlensError(f"{data_dir}: no image in fold(s) {', '.join(map(str, folds))}")
    if limit is not None and limit < len(items):
        pick = np.unique(np.linspace(0, len(items) - 1, int(limit)).round().astype(int))
        items = [items[i] for i in pick]
    return items, folds, fold_source, folds_overlap


# ------------------------------------------------------------------------------------------ measure
_Example = tuple[Item, np.ndarray, dict[str, float], str, float]  # item, full-size map, metrics, predicted, p
_Loaded = tuple[Item, np.ndarray, tuple[int, int, int], tuple[int, int], np.ndarray]  # item, x, box, shape, mask


@dataclass
class _Run:
    """One measuring pass: the models and settings it explains with, and what it collects."""
    model: torch.nn.Module
    rnd_model: torch.nn.Module
    classes: list[str]
    methods: list[str]
    target: str
    size: int
    n_examples: int
    rng: np.random.Generator  # draws the random baseline, batch by batch
    per_image: list[dict[str, Any]] = field(default_factory=list)
    examples: list[_Example] = field(default_factory=list)
    per_class_examples: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    sanity: dict[str, dict[str, list[float]]] = field(init=False)  # {method: {'spearman': [], 'ssim': []}}
    center: np.ndarray = field(init=False)  # the centre-prior baseline (S x S)
    sources: list[str] = field(init=False)  # methods, their randomised twins, the baselines

    def __post_init__(self) -> None:
        self.center = center_prior(self.size)
        self.sources = self.methods + [f"{m}@randomized" for m in self.methods] + list(BASELINES)
        self.sanity = {m: {"spearman": [], "ssim": []} for m in self.methods}


def _measure(pred: Any, items: list[Item], methods: list[str], target: str, n_examples: int, seed: int,
             batch: int, progress: Callable[[int, int], None] | None) -> _Run:
    """Read, explain and score `items` in batches; unusable ones are logged and listed in `skipped`."""
    rng = np.random.default_rng(seed)
    run = _Run(pred.model, randomized_copy(pred.model, seed), list(pred.classes), methods, target,
               pred.pre.size, n_examples, rng)
    buf: list[_Loaded] = []
    total = len(items)
    for n, it in enumerate(items):
        try:
            buf.append(_load(it, run.classes, pred.pre))
        except (TumorlensError, OSError) as e:
            msg = str(e) if isinstance(e, TumorlensError) else f"{it.image}: {e}"
            log.warning("skipped %s", msg)
            run.skipped.append({"index": it.index, "reason": msg})
            continue
        if len(buf) >= batch:
            _flush(run, buf)
            buf = []
            if progress:
                progress(n + 1, total)
    _flush(run, buf)
    if progress:
        progress(total, total)
    return run


def _load(it: Item, classes: list[str], pre: Any) -> _Loaded:
    """An item as the network sees it (the Predictor's path), with its crop box and mask at full size."""
    if it.label not in classes:
        raise TumorlensError(f"{it.image}: class {it.label!r} is not one of the model's ({', '.join(classes)})")
    gray = read_gray(it.image, draft=4 * pre.size)
    if float(np.ptp(gray)) == 0.0:  # all black or one grey: no anatomy to point at, scored as a slice before
        raise TumorlensError(f"{it.image}: blank image (every pixel {float(gray.flat[0]):g})")
    shape = _image_shape(it.image)
    mask = read_mask(it.mask, shape)
    if not mask.any():
        raise TumorlensError(f"{it.mask}: empty mask")
    x, box = preprocess_array(gray, pre)
    return it, x, map_box(box, shape[0] / gray.shape[0]), shape, mask


def _flush(run: _Run, buf: list[_Loaded]) -> None:
    """Explain one batch with every method, the randomised model and the baselines; score every map."""
    if not buf:
        return
    x = torch.from_numpy(np.stack([b[1] for b in buf])).unsqueeze(1)
    cams: dict[str, np.ndarray] = {}
    probs = None
    tgt: Any = None
    if run.target == "true":
        tgt = [run.classes.index(b[0].label) for b in buf]
    for m in run.methods:
        cams[m], p = explain_batch(run.model, x, tgt, m)
        if probs is None:
            probs = p
            if tgt is None:
                tgt = p.argmax(1).tolist()  # the randomised model explains the trained one's class
    for m in run.methods:
        cams[f"{m}@randomized"], _ = explain_batch(run.rnd_model, x, tgt, m)
        run.sanity[m]["spearman"].extend(spearman(cams[m], cams[f"{m}@randomized"]).tolist())
        run.sanity[m]["ssim"].extend(ssim(cams[m], cams[f"{m}@randomized"]).tolist())
    cams["random"] = run.rng.random((len(buf), run.size, run.size), dtype=np.float32)
    cams["center"] = np.broadcast_to(run.center, (len(buf), run.size, run.size))
    for i, loaded in enumerate(buf):
        _score(run, loaded, {s: c[i] for s, c in cams.items()}, probs[i], tgt[i])


def _score(run: _Run, loaded: _Loaded, cams: dict[str, np.ndarray], probs: np.ndarray, tgt: int) -> None:
    """One image's row of metrics (every source's S x S map pasted back at full size); maybe an example."""
    it, _, box, shape, mask = loaded
    mi = mask_info(mask)
    region = _region(box, shape)
    classes, methods = run.classes, run.methods
    k = int(probs.argmax())
    row: dict[str, Any] = {"index": it.index, "class": it.label, "fold": it.fold,
                           "predicted": classes[k], "correct": classes[k] == it.label,
                           "target": classes[tgt], "mask_fraction": mi.area / mask.size}
    heat0 = None
    for s in run.sources:
        heat = paste_cam(cams[s], box, shape)
        if s == methods[0]:
            heat0 = heat
        for name, v in map_metrics(heat, mi, region).items():
            row[f"{s}.{name}"] = v
    run.per_image.append(row)
    n_examples = run.n_examples
    if len(run.examples) < n_examples and run.per_class_examples.get(it.label, 0) < max(1, n_examples // 3):
        run.per_class_examples[it.label] = run.per_class_examples.get(it.label, 0) + 1
        run.examples.append((it, heat0, {m: row[f"{methods[0]}.{m}"] for m in METRICS}, classes[k],
                             float(probs[k])))


# -------------------------------------------------------------------------------------------- write
def _document(pred: Any, run: _Run, summary: dict[str, Any], target: str, seed: int, limit: int | None,
              data: dict[str, Any]) -> dict[str, Any]:
    """The localization.json document ('examples' and 'seconds' are filled in when written)."""
    ckpt = pred.ckpt
    return {
        "disclaimer": DISCLAIMER,
        "model": {"path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256,
                  "classes": run.classes, "input_size": run.size},
        "data": {**data, "n_images": len(run.per_image), "n_skipped": len(run.skipped),
                 "skipped": run.skipped[:50], "limit": limit},
        "settings": {"methods": run.methods, "target": target, "pointing_tolerance": POINTING_TOLERANCE,
                     "threshold": "otsu over the crop box", "bootstrap_resamples": N_BOOT, "seed": seed,
                     "center_prior_sigma": "0.25 * input size", "baselines": list(BASELINES),
                     "randomized": "all parameters and BatchNorm statistics re-initialised (seeded)"},
        "groups": summary["groups"],
        "results": summary["results"],
        "sanity_check": {"criterion": f"mean Spearman rank correlation of trained vs randomised maps "
                                      f"< {SANITY_MAX_RANK_CORRELATION}", "methods": summary["sanity"]},
        "targets": {**TARGETS, "above_all_baselines": True},
        "recommended_method": summary["best"],
        "default_method": default_method(pred.model),
        "verdicts": summary["verdicts"],
        "seconds": 0.0,
    }


# every output of `localize`, localization.json last (its presence marks a complete run)
OUTPUTS = ["localization_images.csv", "localization.png", "examples", "localization.json"]


def _write_outputs(out: Path, doc: dict[str, Any], run: _Run, summary: dict[str, Any], t_start: float) -> None:
    """localization_images.csv, localization.png, examples/*.png and (last) localization.json."""
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(run.per_image, run.sources, out / "localization_images.csv")
    mf_all = summary["groups"]["overall"]["mask_fraction_mean"]
    _plot_bars(summary["results"], run.sources, mf_all, out / "localization.png")
    ex_dir = out / "examples"
    for it, heat, met, label, p in run.examples:
        try:
            gray = read_gray(it.image)
            mask = read_mask(it.mask, gray.shape)
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{it.index}_{it.label}")
            title = (f"{Path(it.image).name}: true {it.label}, predicted {label} ({p:.2f})\n"
                     f"{run.methods[0]} map; pointing {'hit' if met['pointing'] else 'miss'}, "
                     f"energy in mask {met['energy']:.2f}, IoU {met['iou']:.2f}")
            overlay_png(gray, heat, ex_dir / f"{stem}.png", title, mask=mask)
        except TumorlensError as e:
            log.warning("no example overlay: %s", e)
    doc["examples"] = sorted(p.name for p in ex_dir.glob("*.png")) if ex_dir.exists() else []
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(out / "localization.json", text.encode("utf-8"))
    log.info("localization of %d images (%s) written to %s", len(run.per_image), ", ".join(run.methods), out)


def _write_csv(rows: list[dict[str, Any]], sources: list[str], path: Path) -> None:
    cols = ["index", "class", "fold", "predicted", "correct", "target", "mask_fraction"] + [
        f"{s}.{m}" for s in sources for m in METRICS]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    # no disclaimer line: a '#' row is read as data by CSV readers (pandas, spreadsheets); like evaluate's
    # predictions.csv this is a table for programs, and localization.json beside it carries the notice
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
