"""Does the model hold up on slices acquired or displayed differently? Orientation, contrast and quality.

Scans from other hospitals arrive flipped (radiological vs neurological left-right, viewers that flip
vertically), turned, windowed differently, at lower resolution, blurred by thick slices, noisy, framed
tighter or looser, skull-stripped, or with a viewer's annotations burned into the corners. Each slice of
the model's own held-out test part is changed one way at its original resolution and sent through
`Predictor.classify_frames` - the product's own path, refusal and abstention included - and the answers
are scored per change: accuracy over all slices (a refused slice counts as wrong), tumour -> "no tumour"
miss rate, and the shares refused and uncertain. The test slices listed as CT
in benchmarks/kaggle_ct.csv are left out: they are not MRI.

    python benchmarks/robustness.py [--model CKPT] [--data DIR] [--limit N] [--out benchmarks/robustness.md]
Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from ct_in_kaggle import LIST as CT_LIST
from ct_in_kaggle import read_list as read_ct_list
from PIL import Image

from tumorlens.config import DISCLAIMER
from tumorlens.data import read_gray
from tumorlens.fileio import atomic_write_text
from tumorlens.metrics import wilson_ci
from tumorlens.predict import DISTANCE_REASON, Predictor
from tumorlens.readers import Frame

ROOT = Path(__file__).resolve().parents[1]


def _resample(a: np.ndarray, side: int) -> np.ndarray:
    """Down to `side` pixels on the long edge and back up: a low-resolution acquisition or export."""
    h, w = a.shape
    s = side / max(h, w)
    small = Image.fromarray(a).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    return np.asarray(small.resize((w, h), Image.BILINEAR), np.float32)


def _blur(a: np.ndarray) -> np.ndarray:
    """Gaussian blur of 0.4% of the frame's side (2 px at 512 px): thick slices, motion."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, 0.004 * max(a.shape)).astype(np.float32)


def _gamma(a: np.ndarray, g: float) -> np.ndarray:
    hi = max(float(a.max()), 1e-6)
    return ((a / hi) ** g * hi).astype(np.float32)


def _head(a: np.ndarray) -> np.ndarray:
    """The head's pixels: above 8% of the maximum (the preprocessing's foreground threshold)."""
    return a[a > 0.08 * a.max()] if a.max() > 0 else a.ravel()


def _window(a: np.ndarray, pct: float) -> np.ndarray:
    """Saturate everything above the `pct` percentile of the head: a narrow display window."""
    head = _head(a)
    return np.minimum(a, np.percentile(head, pct)).astype(np.float32)


def _equalize(a: np.ndarray) -> np.ndarray:
    """Histogram equalisation of the 8-bit image, as an export or viewer may apply (PIL ImageOps.equalize)."""
    from PIL import ImageOps

    hi = max(float(a.max()), 1e-6)
    eq = ImageOps.equalize(Image.fromarray(np.round(a / hi * 255).astype(np.uint8)))
    return np.asarray(eq, np.float32)


def _s_curve(a: np.ndarray) -> np.ndarray:
    """A steep S-shaped display curve centred on the head's median: strong contrast, flat ends."""
    head = _head(a)
    mid, spread = float(np.median(head)), max(float(head.std()), 1e-6)
    return (255 / (1 + np.exp(-(a - mid) / (0.3 * spread)))).astype(np.float32) * (a > 0)


def _invert(a: np.ndarray) -> np.ndarray:
    """The head's grey levels reversed (background kept dark): fluid bright and white matter dark, as in a T2
    slice, but the enhancing tumour dark. A crude stand-in for another sequence; the real non-T1 tumour
    slices are scored by sequences.py (where a model trained to see through inversions did no better)."""
    hi = max(float(np.percentile(_head(a), 99.5)), 1e-6)
    x = np.clip(a / hi, 0, 1)
    return (np.where(a > 0.08 * a.max(), 1.08 - x, 0) * 255).astype(np.float32)


def _skull_strip(a: np.ndarray, frac: float = 0.06) -> np.ndarray:
    """A crude skull strip: the head (filled, largest part) shaved by `frac` of its size and everything else set
    to black, as in skull-stripped public data (BraTS). No brain mask exists for these slices, so the cut
    follows the head's outline, not the brain's: some skull stays where it is thick, some brain goes where
    it is thin."""
    from scipy import ndimage as ndi

    m = ndi.binary_fill_holes(ndi.binary_opening(a > 0.08 * a.max(), iterations=2))
    lab, n = ndi.label(m)
    if n > 1:
        m = lab == 1 + int(np.argmax(ndi.sum(m, lab, range(1, n + 1))))
    inner = ndi.binary_erosion(m, iterations=max(1, int(frac * np.sqrt(m.sum()))))
    return np.where(inner, a, 0).astype(np.float32)


def _pad(a: np.ndarray, frac: float) -> np.ndarray:
    """A looser frame: a dark border of `frac` of the side on every edge."""
    p = int(frac * max(a.shape))
    return np.pad(a, p)


def _crop(a: np.ndarray, frac: float) -> np.ndarray:
    """A tighter frame: `frac` of the side cut from every edge (may cut into the skull)."""
    h, w = a.shape
    return a[int(frac * h):h - int(frac * h), int(frac * w):w - int(frac * w)]


def _text(a: np.ndarray) -> np.ndarray:
    """Burned-in annotations, white, in the four corners (letters 4% of the side high), as on scans exported
    from a viewer: side marker, sequence and window settings, image number."""
    from PIL import ImageDraw, ImageFont

    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode F: the slice's own grey levels
    side = max(a.shape)
    font = ImageFont.load_default(size=max(8, round(0.04 * side)))
    draw, m, white = ImageDraw.Draw(img), round(0.02 * side), float(a.max())
    h, w = a.shape
    for (x, y, anchor), label in zip(((m, m, "la"), (w - m, m, "ra"), (m, h - m, "ld"), (w - m, h - m, "rd")),
                                     ("R", "T1 SE  TR 450  TE 15", "IM 12/24", "W 1200  L 600")):
        draw.text((x, y), label, fill=white, font=font, anchor=anchor)
    return np.asarray(img, np.float32)


def _noise(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(a + rng.normal(0, 0.03 * float(a.max()), a.shape), 0, None).astype(np.float32)


# name -> change of a raw slice (float32, original resolution); rng only where the change is random
CHANGES = {
    "as published": lambda a, rng: a,
    "left-right flip": lambda a, rng: a[:, ::-1],
    "upside down (vertical flip)": lambda a, rng: a[::-1],
    "turned 90 degrees": lambda a, rng: np.rot90(a, 1),
    "turned 180 degrees": lambda a, rng: np.rot90(a, 2),
    "turned 270 degrees": lambda a, rng: np.rot90(a, 3),
    "gamma 0.6 (brighter)": lambda a, rng: _gamma(a, 0.6),
    "gamma 1.6 (darker)": lambda a, rng: _gamma(a, 1.6),
    "narrow window (saturate above the 90th percentile)": lambda a, rng: _window(a, 90),
    "narrower window (saturate above the 80th percentile)": lambda a, rng: _window(a, 80),
    "histogram-equalised": lambda a, rng: _equalize(a),
    "S-shaped contrast curve": lambda a, rng: _s_curve(a),
    "grey levels inverted inside the head (T2-like fluid)": lambda a, rng: _invert(a),
    "skull stripped (head outline shaved by 6%)": lambda a, rng: _skull_strip(a),
    "128 px resolution": lambda a, rng: _resample(a, 128),
    "blur": lambda a, rng: _blur(a),
    "noise (3% of the range)": _noise,
    "looser frame (20% border)": lambda a, rng: _pad(a, 0.2),
    "tighter frame (10% cut per edge)": lambda a, rng: _crop(a, 0.1),
    "burned-in text in the corners": lambda a, rng: _text(a),
}


def score(recs: list, labels: list[str], neg: str = "notumor") -> dict[str, float]:
    """Accuracy over all slices (refused = wrong), tumour miss rate, refused / uncertain shares."""
    n = len(recs)
    right = sum(r.label == y for r, y in zip(recs, labels))
    tumour = [r for r, y in zip(recs, labels) if y != neg]
    missed = sum(r.label == neg for r in tumour)
    refused = [r.status in ("rejected", "error") for r in recs]
    return {"n": n, "accuracy": right / n, "right": right, "tumour": len(tumour), "missed": missed,
            "refused": sum(refused) / n,
            # which layer refused: the feature checks - the feature distance or the look-alike detector, whose
            # reasons begin DISTANCE_REASON - or the image checks
            "refused_distance": sum(r.status == "rejected" and (r.reason or "").startswith(DISTANCE_REASON)
                                    for r in recs) / n,
            "tumour_refused": sum(f for f, y in zip(refused, labels) if y != neg) / max(1, len(tumour)),
            "uncertain": sum(r.status == "uncertain" for r in recs) / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N test slices (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/robustness.md"))
    ap.add_argument("--ct-list", default=str(CT_LIST), help="the dataset's CT slices, left out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    pr = Predictor(a.model)
    # the set's CT slices (benchmarks/kaggle_ct.csv) are not MRI scans from another site: left out
    ct = set(read_ct_list(a.ct_list))  # paths
    test = [(p, lab) for p, lab, *_ in pr.ckpt.split_rows("test")]
    n_ct = sum(p in ct for p, _ in test)
    test = [(p, lab) for p, lab in test if p not in ct]
    test = test[:a.limit] if a.limit > 0 else test
    raw = [read_gray(Path(a.data) / p) for p, _ in test]
    labels = [lab for _, lab in test]
    rng = np.random.default_rng(a.seed)
    rows = []
    for name, change in CHANGES.items():
        items = [(p, Frame(np.ascontiguousarray(change(x, rng), dtype=np.float32))) for (p, _), x in zip(test, raw)]
        s = score(pr.classify_frames(items), labels)
        lo, hi = wilson_ci(s["right"], s["n"])
        mlo, mhi = wilson_ci(s["missed"], s["tumour"])
        rows.append(f"| {name} | {s['accuracy']:.3f} ({lo:.3f}-{hi:.3f}) | {100 * s['missed'] / s['tumour']:.1f}% "
                    f"({100 * mlo:.1f}-{100 * mhi:.1f}) | {100 * s['refused']:.1f}% | {100 * s['uncertain']:.1f}% | "
                    f"{100 * s['refused_distance']:.1f}% | {100 * s['tumour_refused']:.1f}% |")
    text = "\n".join([
        "# Robustness: the held-out test slices changed the way other sites' scans differ", "",
        f"{DISCLAIMER} Regenerate with `python benchmarks/robustness.py"
        + (" --model CKPT" if a.model else "") + (f" --limit {a.limit}" if a.limit else "") + "`"
        + (" (CKPT: the checkpoint named below)" if a.model else "") + ".", "",
        f"Model: `{Path(str(pr.ckpt.path)).name}` (sha256 {pr.ckpt.sha256[:12]}); {len(test)} MRI slices of its "
        f"held-out test part ({sum(y != 'notumor' for y in labels)} tumour; the {n_ct} slices listed as CT in "
        f"`{Path(a.ct_list).name}` left out), each changed at its original "
        "resolution, then classified by `Predictor` with refusal and abstention on. Accuracy counts every slice "
        "(a refused one is wrong; an uncertain one is scored by its label); miss rate = tumour slices called "
        f"'no tumour'. The last two columns split the refusals: the share of all slices refused by the feature "
        "checks (the feature distance or the look-alike detector; the rest of the refused share by the image checks "
        "before the model), and the share of the tumour "
        "slices refused (neither called tumour nor missed). "
        f"{time.perf_counter() - t0:.0f} s with {torch.get_num_threads()} torch thread(s).", "",
        "| change | accuracy (95% CI) | tumour miss rate (95% CI) | refused | uncertain | refused by the feature "
        "checks | tumour slices refused |", "|---|---|---|---|---|---|---|",
        *rows, ""])
    atomic_write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
