"""Where a model's errors on the Kaggle set come from: accuracy by the source of each test image.

    tumorlens evaluate ../shared/data/brain-tumor-mri-dataset --split SPLIT --out DIR
    python benchmarks/error_sources.py DIR/predictions.csv [--data DIR] [--out FILE]

For the bundled model (benchmarks/error_sources.md): SPLIT from `tumorlens info --split-out SPLIT`, and
`--out benchmarks/error_sources.md`.

The Kaggle set combines three sources (its README): tumour slices that are copies of the figshare set (Cheng et
al.; found through `KAGGLE_TO_FIGSHARE.csv`, correlation >= 0.97 as in `groups-figshare-fold.csv`), other tumour
slices (SARTAJ), and the no-tumour slices (Br35H/SARTAJ). On the clean split the figshare part is a patient-
disjoint three-class problem (glioma, meningioma, pituitary) - the hardest part, and the one published
patient-level results on figshare speak to. Slices listed as CT in `kaggle_ct.csv` are counted apart.
The table gives accuracy per source and per true class with Wilson 95% intervals, and the confusions.

Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from ct_in_kaggle import read_list as read_ct_list  # noqa: E402

FIGSHARE_MIN_CORR = 0.97  # the threshold groups-figshare-fold.csv was built with (the dataset's README)


def source_of(path: str, label: str, figshare: dict[str, float], ct: set[str]) -> str:
    """'CT (listed)', 'figshare copy', 'other tumour' or 'no tumour' for one Kaggle image path."""
    if path in ct:
        return "CT (listed)"
    if figshare.get(path, 0.0) >= FIGSHARE_MIN_CORR:
        return "figshare copy"
    return "no tumour" if label == "notumor" else "other tumour"


def main() -> int:
    from tumorlens.config import DISCLAIMER, TumorlensError
    from tumorlens.fileio import atomic_write_text
    from tumorlens.metrics import wilson_ci

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", help="predictions.csv written by `tumorlens evaluate`")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--out", help="also write the table to this Markdown file")
    a = ap.parse_args()
    mapping = Path(a.data) / "KAGGLE_TO_FIGSHARE.csv"
    if not mapping.is_file():
        raise TumorlensError(f"{mapping}: not found (--data must be the Kaggle brain-tumour set)")
    with open(mapping, newline="") as f:
        figshare = {r["kaggle_path"]: float(r["correlation"]) for r in csv.DictReader(f)}
    try:
        with open(a.predictions, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise TumorlensError(f"{a.predictions}: cannot read ({e.strerror or e})") from None
    if not rows or not {"path", "true", "pred"} <= set(rows[0]):
        raise TumorlensError(f"{a.predictions}: not a predictions.csv of `tumorlens evaluate` (path,true,pred,...)")
    ct = set(read_ct_list())
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(source_of(r["path"], r["true"], figshare, ct), []).append(r)
    L = ["# Accuracy by source of the test images", "", DISCLAIMER, "",
         f"{len(rows)} test images, from `{Path(a.predictions).name}` of `tumorlens evaluate`; regenerate as the "
         "docstring of `benchmarks/error_sources.py` says. Accuracy counts each image by its folder label, so the "
         "listed CT slices count as right when the model answers `notumor` (the product refuses them; `evaluate` "
         "scores every test image).", "",
         "| source | true class | n | accuracy (95% CI) | most frequent wrong answers |", "|---|---|---|---|---|"]
    order = ["figshare copy", "other tumour", "no tumour", "CT (listed)"]
    for src in [s for s in order if s in by]:
        part = by[src]
        by_class: dict[str, list[dict[str, str]]] = {}
        for r in part:
            by_class.setdefault(r["true"], []).append(r)
        # one class only: its row is the source's row, so no 'all' row
        groups = sorted(by_class.items()) if len(by_class) == 1 else [("all", part)] + sorted(by_class.items())
        for cls, rs in groups:
            k = sum(r["true"] == r["pred"] for r in rs)
            lo, hi = wilson_ci(k, len(rs))
            wrong = Counter(f"{r['true']} -> {r['pred']}" for r in rs if r["true"] != r["pred"]).most_common(3)
            L.append(f"| {src} | {cls} | {len(rs)} | {k / len(rs):.3f} ({lo:.3f}-{hi:.3f}) | "
                     + (", ".join(f"{w} ({n})" for w, n in wrong) or "-") + " |")
    right = sum(r["true"] == r["pred"] for r in rows)
    mri = [r for r in rows if r["path"] not in ct]
    right_mri = sum(r["true"] == r["pred"] for r in mri)
    L += ["", f"- all test images: accuracy {right / len(rows):.4f} ({right} of {len(rows)}); without the listed CT "
          f"slices: {right_mri / max(len(mri), 1):.4f} ({right_mri} of {len(mri)})"]
    text = "\n".join(L) + "\n"
    if a.out:
        atomic_write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
