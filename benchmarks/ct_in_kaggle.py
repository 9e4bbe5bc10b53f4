"""Find the CT slices among the Kaggle "MRI" images, and say what the bundled model does with them.

    python benchmarks/ct_in_kaggle.py [--data DIR] [--model CKPT] [--montage PNG] [--feature-montage PNG]
                                      [--out benchmarks/ct_in_kaggle.md] [--list benchmarks/kaggle_ct.csv]

The Kaggle brain-tumour set is sold as MRI, but some of its slices are CT: a thick, bright skull around grey,
low-contrast brain. In MRI the skull is dark (cortical bone gives no signal), so the two differ in the band
just inside the head's outline. Statistic, on a 128-px thumbnail scaled to its 0.5-99.5th percentiles:

    ct_score = bright_band - dark_gap - bright_inside

bright_band: share of the outer band (the head minus its 8-pixel erosion) above 0.8 (CT: the skull);
dark_gap: share of that band below half the interior's median (MRI: bone and CSF); bright_inside: share of
the interior (12-pixel erosion) above 0.8 (MRI T1 with contrast, fat). Slices at or above CUT are listed as
CT candidates. The cut was read off a montage of the 96 highest scores (written by --montage): by eye, all
64 slices at or above CUT (0.33; the lowest of them scores 0.35) looked like CT, the next (0.31) like MRI,
and most below like MRI with a few unclear. A screening list, not a classifier: CT with a large bright lesion can score lower (the lesion adds
to bright_inside).

`BY_EYE` adds the CT slices that the statistic misses and that were found by eye: on 2026-11-27 among the
top-ranked slices of a second, throwaway statistic (the same three shares on the outer band of the head's
moment-matched ellipse): CT with a large bright meningioma, or with a thin skull; on 2026-11-28, 9 more (non-
contrast CT, contrast CT with a meningioma, one with the scanner's head holder in view) among the 40 slices
that `--feature-montage` ranks first: a logistic regression on the model's pooled features (the refusal's
features), CT slices listed against all others, scored out of fold (5 folds by file content) so that a listed
slice does not score itself; every unlisted slice is ranked by its score and the top 40 drawn. A second round
with the 9 added found none among its top 40. The union is written to
`--list` (path, sha256, how found). build_model.py leaves these slices out of the abstention and refusal fits:
the feature distance is meant to describe brain MRI, and with them in, it answered 69 of the 74 Kaggle CT slices
(the model was trained on them as `notumor`); without them it refuses them.

Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import glob
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CUT = 0.33
SIZE = 128
# CT slices that ct_score misses, confirmed by eye (see the docstring); paths relative to the dataset root
BY_EYE = ("Training/meningioma/Tr-me_0364.jpg", "Testing/meningioma/Te-meTr_0009.jpg",
          "Training/meningioma/Tr-me_0282.jpg", "Testing/meningioma/Te-me_0105.jpg",
          "Training/notumor/Tr-no_0359.jpg", "Testing/notumor/Te-no_0096.jpg", "Training/notumor/Tr-no_0010.jpg",
          "Testing/notumor/Te-no_0086.jpg", "Training/notumor/Tr-no_0349.jpg", "Training/notumor/Tr-no_0964.jpg",
          # 2026-11-28, from --feature-montage (see the docstring)
          "Training/notumor/Tr-no_0357.jpg", "Testing/notumor/Te-no_0094.jpg", "Testing/notumor/Te-no_0036.jpg",
          "Training/notumor/Tr-no_0968.jpg", "Training/notumor/Tr-no_0102.jpg", "Testing/meningioma/Te-me_0032.jpg",
          "Testing/meningioma/Te-me_0093.jpg", "Training/meningioma/Tr-me_0270.jpg",
          "Training/meningioma/Tr-me_0212.jpg")
LIST = ROOT / "benchmarks" / "kaggle_ct.csv"


def read_list(path: str | Path = LIST) -> dict[str, str]:
    """path (relative to the dataset root) -> sha256 of the listed CT slices (`--list` of this script)."""
    import csv

    with open(path, newline="") as f:
        return {r["path"]: r["sha256"] for r in csv.DictReader(f)}


def _erode(m: np.ndarray, n: int) -> np.ndarray:
    """n steps of 4-neighbour binary erosion (outside the array counts as background)."""
    m = m.copy()
    for _ in range(n):
        p = np.pad(m, 1, constant_values=False)
        m = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m


def _fill_holes(m: np.ndarray) -> np.ndarray:
    """The mask with every background region not connected to the border filled (ventricles, dark lesions)."""
    from PIL import ImageDraw

    im = Image.fromarray(np.pad(m, 1).astype(np.uint8) * 255).copy()  # a copy: an array-backed image is read-only
    ImageDraw.floodfill(im, (0, 0), 128)  # the outside, reached from a padded corner
    return (np.asarray(im) != 128)[1:-1, 1:-1]


def ct_stats(path: str) -> dict[str, float]:
    g = np.asarray(Image.open(path).convert("L").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    lo, hi = np.percentile(g, [0.5, 99.5])
    n = np.clip((g - lo) / max(hi - lo, 1.0), 0.0, 1.0)
    head = _fill_holes(n > 0.08)
    inner8 = _erode(head, 8)
    band, inner = head & ~inner8, _erode(inner8, 4)
    if band.sum() < 50 or inner.sum() < 50:
        return {"bright_band": 0.0, "dark_gap": 0.0, "bright_inside": 0.0, "ct_score": 0.0}
    med = float(np.median(n[inner]))
    s = {"bright_band": float((n[band] > 0.8).mean()), "dark_gap": float((n[band] < 0.5 * med).mean()),
         "bright_inside": float((n[inner] > 0.8).mean())}
    s["ct_score"] = s["bright_band"] - s["dark_gap"] - s["bright_inside"]
    return s


def feature_ranking(data: str, listed: set[str], model: str | None) -> list[str]:
    """Every unlisted slice of the dataset, most CT-like first by the model's pooled features: an L2-regularised
    logistic regression (listed CT against the rest, classes weighted equally) scored out of fold, with 5 folds
    by file content so that copies of one image share a fold."""
    from tumorlens.data import load_dataset
    from tumorlens.predict import Predictor

    pr = Predictor(model)
    ds = load_dataset(data, pr.pre)
    _, f = pr.logits_and_features(ds.images)
    x = (f - f.mean(0)) / (f.std(0) + 1e-6)
    y = np.array([p in listed for p in ds.paths], dtype=np.float64)
    fold = np.array([int(s[:8], 16) % 5 for s in ds.sha256])
    score = np.zeros(len(y))
    for k in range(5):
        tr = fold != k
        xt, yt = x[tr], y[tr]
        sw = np.where(yt == 1, (len(yt) - yt.sum()) / max(yt.sum(), 1.0), 1.0)
        sw /= sw.mean()
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(300):  # plain gradient descent: the problem is small and convex
            g = sw * (1 / (1 + np.exp(-(xt @ w + b))) - yt)
            w -= 0.5 * (xt.T @ g + w) / len(yt)
            b -= 0.5 * g.mean()
        score[fold == k] = x[fold == k] @ w + b
    return [ds.paths[i] for i in np.argsort(-score, kind="stable") if not y[i]]


def _montage(data: str, names: list[str], labels: list[str], out: str) -> None:
    from PIL import ImageDraw

    sheet = Image.new("L", (96 * 16, 110 * ((len(names) + 15) // 16)))
    draw = ImageDraw.Draw(sheet)
    for k, (r, text) in enumerate(zip(names, labels)):
        x, y = (k % 16) * 96, (k // 16) * 110
        sheet.paste(Image.open(os.path.join(data, r)).convert("L").resize((96, 96)), (x, y))
        draw.text((x + 2, y + 97), text, fill=255)
    sheet.save(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brain-tumor-mri-dataset"))
    ap.add_argument("--model", help="checkpoint whose answers on the candidates to report (default: bundled)")
    ap.add_argument("--montage", help="write the 96 highest-scoring slices, labelled, to this PNG")
    ap.add_argument("--feature-montage", help="write the 40 unlisted slices that the model's features rank as most "
                    "CT-like (out-of-fold logistic regression, see the docstring) to this PNG, to look for CT by eye")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "ct_in_kaggle.md"))
    ap.add_argument("--list", default=str(LIST), help="where to write the CT slices found (CSV)")
    a = ap.parse_args()
    from tumorlens.config import DISCLAIMER, TumorlensError
    from tumorlens.predict import Predictor

    paths = sorted(glob.glob(os.path.join(a.data, "*", "*", "*.jpg")))
    if not paths:
        raise TumorlensError(f"{a.data}: no Kaggle JPEGs found (expected Training/ and Testing/ class folders)")
    t = time.perf_counter()
    rel = [Path(p).relative_to(a.data).as_posix() for p in paths]
    stats = {r: ct_stats(p) for r, p in zip(rel, paths)}
    dt = time.perf_counter() - t
    ranked = sorted(rel, key=lambda r: -stats[r]["ct_score"])
    by_score = [r for r in ranked if stats[r]["ct_score"] >= CUT]
    missing = [r for r in BY_EYE if r not in stats]
    if missing:
        raise TumorlensError(f"{a.data}: BY_EYE slices not found: {', '.join(missing)}")
    cands = by_score + [r for r in BY_EYE if r not in by_score]
    from tumorlens.data import file_sha256
    from tumorlens.fileio import atomic_write_text

    # and every byte-identical copy of a listed slice
    sha = {r: file_sha256(p) for r, p in zip(rel, paths)}
    listed = {sha[c] for c in cands}
    copies = [r for r in ranked if sha[r] in listed and r not in cands]
    found = {**{c: "ct_score" for c in by_score}, **{c: "by eye" for c in BY_EYE if c not in by_score},
             **{c: "copy of a listed file" for c in copies}}
    cands += copies
    atomic_write_text(Path(a.list), "path,sha256,ct_score,found_by\n" + "".join(
        f"{c},{sha[c]},{stats[c]['ct_score']:.4f},{found[c]}\n" for c in cands))
    pr = Predictor(a.model)
    test = {row[0] for row in pr.ckpt.split_rows("test")} if pr.ckpt.meta.get("split", {}).get("manifest") else set()
    recs = {Path(r.path).relative_to(a.data).as_posix(): r
            for r in pr.predict_paths([os.path.join(a.data, c) for c in cands], batch=64)}
    if a.montage:
        _montage(a.data, ranked[:96], [f"{k} {stats[r]['ct_score']:.2f}" for k, r in enumerate(ranked[:96])], a.montage)
    if a.feature_montage:
        top = feature_ranking(a.data, set(cands), a.model)[:40]
        _montage(a.data, top, [f"{k} {Path(r).stem}" for k, r in enumerate(top)], a.feature_montage)
    st = Counter(recs[c].status for c in cands)
    st_test = Counter(recs[c].status for c in cands if c in test)
    L = ["# CT slices in the Kaggle \"MRI\" set", "", DISCLAIMER, "",
         f"Regenerate with `python benchmarks/ct_in_kaggle.py` ({len(paths)} images, {dt:.0f} s). Statistic and "
         f"cut: see the script's docstring (a screening list read off a montage by eye, not a classifier).", "",
         f"- CT slices: **{len(cands)} of {len(paths)}** ({100 * len(cands) / len(paths):.1f} %): {len(by_score)} "
         f"with ct_score >= {CUT}, {len(cands) - len(by_score) - len(copies)} more found by eye (`BY_EYE`), "
         f"{len(copies)} byte-identical copies of those; listed in `{Path(a.list).name}`; by folder: "
         + ", ".join(f"{k} {v}" for k, v in sorted(Counter('/'.join(c.split('/')[:2]) for c in cands).items())),
         f"- distinct images among them (identical pixels count once): "
         f"{len({Image.open(os.path.join(a.data, c)).convert('L').tobytes() for c in cands})}",
         f"- model `{Path(str(pr.ckpt.path)).name}`: statuses on all of them {dict(st)}; on the "
         f"{sum(c in test for c in cands)} in its own held-out test part {dict(st_test)}",
         "", "The model was trained on these slices with their folder's label (mostly `notumor`). Its feature "
         "distance was fitted without them (build_model.py), so most are refused; one that is answered gets a "
         "class. DICOM input is refused by its Modality tag.", "",
         "| rank | file | ct_score | bright band | dark gap | bright inside | status | label |",
         "|---|---|---|---|---|---|---|---|"]
    for k, c in enumerate(cands):
        s, r = stats[c], recs[c]
        L.append(f"| {k} | `{c}`{' (test part)' if c in test else ''} | {s['ct_score']:.2f} | {s['bright_band']:.2f} | "
                 f"{s['dark_gap']:.2f} | {s['bright_inside']:.2f} | {r.status} | {r.label or '-'} |")
    Path(a.out).write_text("\n".join(L) + "\n")
    print("\n".join(L[:12]))


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
