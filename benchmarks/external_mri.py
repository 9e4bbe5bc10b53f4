"""Healthy-brain MRI from other sources than the training set: what does the bundled model say?

    pip install nilearn dipy          # optional: each source whose package is missing is skipped, and said so
    python benchmarks/external_mri.py [--model CKPT] [--out benchmarks/external_mri.md] [--work DIR]

The volumes are the real brain MRI that ship inside PyPI packages (no download at run time): nilearn's MNI152
2009a T1 template (an average of many brains, skull-stripped, 1 mm), nibabel's test fMRI volume (EPI, a slab
of 24 axial slices) and dipy's b=0 diffusion volumes (T2-weighted EPI). None holds a tumour, so every answer
other than "no tumour" is a false alarm, and every refusal refuses a real brain MRI slice.

Each volume is cut, after reorientation to RAS (`nibabel.as_closest_canonical`, as the product's NIfTI reader
does), every 6 mm through the head along each axis (axial only for slabs), windowed to the volume's 0.5-99.5th
percentiles, resampled to 1 mm square pixels and written as an 8-bit PNG; the PNGs go through `Predictor`
(refusal and abstention on). The volume itself (its first volume, for a 4-D file) also goes through the
product's NIfTI path (its own choice of axial slices, `readers.auto_slices`). Position: where the slice lies
between the first and the last slice that holds head (0 = bottom / right / back, 1 = top / left / front).
Slices written under --work (default: a temporary folder). Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEP_MM = 6.0
ORIENTS = {"sagittal": 0, "coronal": 1, "axial": 2}
# (name, package, file inside the package, what it is, orientations)
SOURCES = [
    ("mni152_t1", "nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
     "MNI ICBM152 2009a symmetric T1 template (average brain, skull-stripped, 1 mm)", tuple(ORIENTS)),
    ("example4d_epi", "nibabel", "tests/data/example4d.nii.gz",
     "BOLD fMRI (EPI), first volume, a slab of 24 axial slices", ("axial",)),
    ("s0_10slices_dwi", "dipy", "data/files/S0_10slices.nii.gz",
     "diffusion b=0 (T2-weighted EPI), 10 axial slices", ("axial",)),
    ("aniso_vox_dwi", "dipy", "data/files/aniso_vox.nii.gz",
     "diffusion b=0 (T2-weighted EPI), 4 x 4 x 5 mm, whole brain", tuple(ORIENTS)),
]


def package_file(package: str, rel: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    p = Path(spec.origin).parent / rel
    return p if p.is_file() else None


def head_range(vol: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index along `axis` whose head area is at least 5% of the largest slice's."""
    lo, hi = np.percentile(vol, [1, 99])
    fg = vol > lo + 0.1 * (hi - lo)
    area = fg.sum(axis=tuple(i for i in range(3) if i != axis))
    ok = np.flatnonzero(area >= 0.05 * area.max())
    return int(ok[0]), int(ok[-1])


def cut(vol: np.ndarray, zooms: list[float], orient: str, k: int) -> tuple[np.ndarray, float, float]:
    """One slice of a RAS volume as displayed (rows top -> bottom), with its column and row spacing in mm."""
    if orient == "axial":
        return vol[::-1, ::-1, k].T, zooms[0], zooms[1]  # rows anterior -> posterior, columns right -> left
    if orient == "sagittal":
        return vol[k, ::-1, ::-1].T, zooms[1], zooms[2]  # rows superior -> inferior, columns anterior -> posterior
    return vol[::-1, k, ::-1].T, zooms[0], zooms[2]  # coronal: rows superior -> inferior, columns right -> left


def to_png(g: np.ndarray, col_mm: float, row_mm: float, lo: float, hi: float, path: Path) -> None:
    from PIL import Image

    a = (np.clip((g.astype(np.float64) - lo) / (hi - lo + 1e-9), 0, 1) * 255).round().astype(np.uint8)
    h, w = a.shape
    nh, nw = max(h, int(round(h * row_mm))), max(w, int(round(w * col_mm)))
    im = Image.fromarray(a)
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def first_volume(path: Path, dst: Path) -> Path:
    """`path` itself when it is 3-D, else its first volume written to `dst` (the product refuses 4-D files)."""
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) <= 3:
        return path
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32)[..., 0], img.affine), str(dst))
    return dst


def slices_of(name: str, path: Path, orients: tuple[str, ...], work: Path) -> list[dict]:
    import nibabel as nib

    can = nib.as_closest_canonical(nib.load(str(path)))
    vol = np.asarray(can.dataobj, dtype=np.float32)
    vol = vol[..., 0] if vol.ndim == 4 else vol
    zooms = [float(z) for z in can.header.get_zooms()[:3]]
    lo, hi = (float(v) for v in np.percentile(vol, [0.5, 99.5]))
    rows = []
    for orient in orients:
        ax = ORIENTS[orient]
        a, b = head_range(vol, ax)
        step = max(1, int(round(STEP_MM / zooms[ax])))
        for k in sorted(set(range(a, b + 1, step)) | {b}):
            p = work / name / orient / f"{name}_{orient[:3]}_{k:03d}.png"
            g, cm, rm = cut(vol, zooms, orient, k)
            to_png(g, cm, rm, lo, hi, p)
            rows.append({"source": name, "input": "PNG", "orient": orient, "index": k,
                         "pos": (k - a) / max(1, b - a), "path": str(p)})
    return rows


def outcome(rec) -> str:
    if rec.status == "ok":
        return "no tumour" if rec.label == "notumor" else f"{rec.label} (ok)"
    if rec.status == "uncertain":
        return "uncertain"
    return rec.status


def position_bin(pos: float) -> str:
    return "ends (outer 20%)" if pos < 0.2 or pos > 0.8 else "middle 60%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "external_mri.md"))
    ap.add_argument("--work", default=None, help="folder for the slices (default: a temporary folder)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from tumorlens.checkpoint import BUNDLED
    from tumorlens.config import DISCLAIMER
    from tumorlens.predict import Predictor

    t0 = time.time()
    pr = Predictor(a.model)
    tmp = None
    if a.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="tumorlens-external-")
    work = Path(a.work or tmp.name)
    rows, used, skipped = [], [], []
    for name, package, rel, what, orients in SOURCES:
        path = package_file(package, rel)
        if path is None:
            skipped.append(f"{name} ({package} not installed or without {rel})")
            continue
        version = __import__(package).__version__
        used.append(f"`{name}`: {what}; `{package}` {version}, `{rel}`")
        got = slices_of(name, path, orients, work)
        for r, rec in zip(got, pr.predict_paths([r["path"] for r in got], workers=0)):
            r["outcome"], r["reason"], r["conf"] = outcome(rec), rec.reason, rec.confidence
        rows += got
        for rec in pr.predict_file(first_volume(path, work / f"{name}.nii.gz")):  # the product's NIfTI path
            rows.append({"source": name, "input": "NIfTI (auto slices)", "orient": "axial",
                         "index": rec.slice, "pos": None, "path": str(path), "outcome": outcome(rec),
                         "reason": rec.reason, "conf": rec.confidence})
    if not rows:
        sys.exit("no source found: pip install nilearn dipy (nibabel is a dependency of tumorlens)")
    kinds = ["no tumour", "glioma (ok)", "meningioma (ok)", "pituitary (ok)", "uncertain", "rejected", "error"]

    def table(key) -> list[str]:
        groups: dict[tuple, Counter] = {}
        for r in rows:
            groups.setdefault(key(r), Counter())[r["outcome"]] += 1
        out = ["| " + " | ".join(["source", "input", "orientation", "where", "n", *kinds]) + " |",
               "|" + "---|" * (5 + len(kinds))]
        for k, c in groups.items():
            out.append("| " + " | ".join([*map(str, k), str(sum(c.values())), *(str(c[x]) for x in kinds)]) + " |")
        return out

    ckpt = a.model or str(BUNDLED.relative_to(ROOT))
    alarms = [r for r in rows if r["outcome"].endswith("(ok)")]
    refused = Counter((r["reason"] or "").split(" [")[0] for r in rows if r["outcome"] == "rejected")
    n = len(rows)
    L = ["# Healthy-brain MRI from other sources", "", DISCLAIMER, "",
         f"Measured by `python benchmarks/external_mri.py` with model `{ckpt}`; torch threads 1; "
         f"{time.time() - t0:.0f} s. See the script's docstring for how the slices are cut.", "",
         "Sources:", *[f"- {u}" for u in used], *[f"- skipped: {s}" for s in skipped], "",
         f"Every record: {n}. No tumour {sum(r['outcome'] == 'no tumour' for r in rows)}, a tumour class answered "
         f"(false alarm) {len(alarms)}, uncertain {sum(r['outcome'] == 'uncertain' for r in rows)}, refused "
         f"{sum(r['outcome'] == 'rejected' for r in rows)}.", "",
         "## By source, input and orientation", "",
         *table(lambda r: (r["source"], r["input"], r["orient"], "all")), "",
         "## PNG slices by position in the head", "",
         *table(lambda r: (r["source"], r["input"], r["orient"], position_bin(r["pos"])) if r["pos"] is not None
                else (r["source"], r["input"], r["orient"], "auto")), "",
         "## False alarms (a tumour class answered with status ok)", "",
         "| source | input | orientation | slice | position | answer | confidence |", "|---|---|---|---|---|---|---|"]
    for r in alarms:
        pos = "" if r["pos"] is None else f"{r['pos']:.2f}"
        L.append(f"| {r['source']} | {r['input']} | {r['orient']} | {r['index']} | {pos} | {r['outcome']} | "
                 f"{r['conf']:.3f} |")
    L += ["", "## Why slices were refused", "", "| reason | records |", "|---|---|",
          *[f"| {k} | {v} |" for k, v in refused.most_common()], ""]
    tmp_out = Path(a.out).with_suffix(".tmp")
    tmp_out.write_text("\n".join(L))
    os.replace(tmp_out, a.out)
    print(f"wrote {a.out}: {n} records, {len(alarms)} false alarms, {sum(refused.values())} refused. {DISCLAIMER}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
