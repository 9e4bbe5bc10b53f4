"""Does the model read the tumour or the image source? A check for the Kaggle set's known shortcut.

In the Kaggle set, `notumor` comes mostly from one web-collected source (many sizes, crops, borders,
RGB JPEGs) and the tumour classes from 512-px contrast-enhanced T1 slices. A model that learned the
source calls a tumour slice "no tumour" once it looks like the other source. Here every tumour slice of
the model's own held-out test part is re-presented in the no-tumour source's style, keeping the anatomy:
re-sized to a random 150-1000 px, padded with a random dark border or cropped tighter, converted to RGB
and saved as a JPEG of random quality. The tumour -> "no tumour" miss rate before and after is compared.

    python benchmarks/shortcut_check.py [--model CKPT] [--data DIR] [--out benchmarks/shortcut.md]
Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from tumorlens.fileio import atomic_write_text
from tumorlens.data import preprocess_array, read_gray
from tumorlens.metrics import wilson_ci
from tumorlens.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]


def restyle(path: Path, rng: np.random.Generator) -> np.ndarray:
    """The slice as the other source would have it: new size, border or crop, RGB JPEG round trip."""
    im = Image.open(path).convert("L")
    side = int(rng.integers(150, 1000))
    im = im.resize((side, side), Image.BILINEAR)
    a = np.asarray(im)
    if rng.random() < 0.5:  # dark border of random width on each side
        t, b, l, r = (int(rng.integers(0, side // 4)) for _ in range(4))
        a = np.pad(a, ((t, b), (l, r)), constant_values=int(rng.integers(0, 20)))
    else:  # tighter crop of the frame's dark margin
        m = int(rng.integers(0, side // 10))
        a = a[m:side - m, m:side - m]
    buf = io.BytesIO()
    Image.fromarray(a).convert("RGB").save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
    buf.seek(0)
    with Image.open(buf) as j:
        j.draft("L", (256, 256))  # as read_gray(path, draft=4 * 64) decodes training JPEGs
        return np.asarray(j.convert("L"), np.float32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/shortcut.md"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    pr = Predictor(a.model, refuse=False)
    tumour = [(p, lab) for p, lab, *_ in pr.ckpt.split_rows("test") if lab != "notumor"]
    rng = np.random.default_rng(a.seed)
    xs_orig, xs_new = [], []
    for p, _ in tumour:
        path = Path(a.data) / p
        xs_orig.append(preprocess_array(read_gray(path, draft=4 * pr.pre.size), pr.pre)[0])
        xs_new.append(preprocess_array(restyle(path, rng), pr.pre)[0])
    neg = pr.classes.index("notumor")
    rows = []
    for name, xs in (("as published", xs_orig), ("re-styled like the no-tumour source", xs_new)):
        pred = pr.probabilities(np.stack(xs)).argmax(1)
        k = int((pred == neg).sum())
        lo, hi = wilson_ci(k, len(pred))
        rows.append(f"| {name} | {len(pred)} | {k} | {100 * k / len(pred):.1f}% ({100 * lo:.1f}-{100 * hi:.1f}) |")
    text = "\n".join([
        "# Shortcut check: tumour slices re-styled like the no-tumour source", "",
        "Research use only - not a medical device. Regenerate with `python benchmarks/shortcut_check.py`.", "",
        f"Model: `{Path(str(pr.ckpt.path)).name}` (sha256 {pr.ckpt.sha256[:12]}); tumour slices of its held-out "
        "test part. Each is re-sized to 150-1000 px, given a dark border or a tighter crop, converted to RGB and "
        "re-saved as a JPEG of quality 60-95 (the no-tumour source's style), then classified.", "",
        "| tumour slices | n | called 'no tumour' | miss rate (95% CI) |", "|---|---|---|---|", *rows, ""])
    atomic_write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
