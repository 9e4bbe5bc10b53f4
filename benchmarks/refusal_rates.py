"""Refusal rates: non-MRI probes (should be 100 % refused) and real Kaggle MRI slices (should be <= 1 %).

    python benchmarks/refusal_rates.py [--model CKPT] [--data ../shared/data/brain-tumor-mri-dataset]
                                       [--out benchmarks/refusal_rates.md]

Statistics-only (header + image statistics, no model) always; with --model also end to end through the
Predictor, which adds the feature checks of that checkpoint (the feature distance and the look-alike detector),
and scores scikit-image's bundled images (a second probe set that no statistics limit was set on; skipped
without scikit-image). Probes come from tests/probes.py.
The Kaggle slices listed as CT in benchmarks/kaggle_ct.csv (ct_in_kaggle.py) are counted apart from its MRI.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ct_in_kaggle import LIST as CT_LIST  # noqa: E402
from ct_in_kaggle import read_list as read_ct_list  # noqa: E402


def stripped_dicom_pngs() -> list[tuple[str, bytes]]:
    """(name (modality), PNG bytes) for each local pydicom test file with decodable pixel data."""
    import io
    import warnings

    import numpy as np
    from PIL import Image

    try:
        import pydicom
        from pydicom.data import get_testdata_files
    except ImportError:
        return []
    out, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(get_testdata_files("*")):
            try:
                ds = pydicom.dcmread(path)
                a = ds.pixel_array
                if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
                    from pydicom.pixels import apply_color_lut

                    a = apply_color_lut(a, ds)
            except Exception:  # noqa: BLE001 - no pixel data, or a codec that is not installed: skip the file
                continue
            a = np.asarray(a, dtype=np.float64)
            if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] != 3):  # frames: the middle one
                a = a[a.shape[0] // 2]
            if a.ndim not in (2, 3) or min(a.shape[:2]) < 16 or np.ptp(a) == 0:
                continue
            u8 = ((a - a.min()) / np.ptp(a) * 255).astype(np.uint8)
            if u8.tobytes() in seen:
                continue
            seen.add(u8.tobytes())
            buf = io.BytesIO()
            Image.fromarray(u8).save(buf, format="PNG")
            out.append((f"{Path(path).stem} ({ds.get('Modality', '?')})", buf.getvalue()))
    return out


def features(pr, fr):
    """The frame's pooled features (1, D), as the Predictor computes them after its own preprocessing."""
    return pr.logits_and_features(pr.preprocess(fr.gray)[0][None])[1]


def distance_ratio(pr, f) -> float:
    """The feature distance of features `f` over the checkpoint's threshold, as if the statistics checks were off
    (above 1: refused by the distance alone)."""
    return float(pr.ood.score(f)[0]) / pr.ood.threshold


def lookalike_margin(pr, f) -> float:
    """The look-alike score of features `f` minus the checkpoint's threshold, as if the other checks were off
    (above 0: refused by the look-alike detector alone); NaN for a checkpoint without one."""
    if pr.lookalike is None:
        return float("nan")
    return float(pr.lookalike.score(f)[0]) - pr.lookalike.threshold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brain-tumor-mri-dataset"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "refusal_rates.md"))
    ap.add_argument("--ct-list", default=str(CT_LIST), help="the dataset's CT slices, counted apart from its MRI")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from probes import probes

    from tumorlens.config import DISCLAIMER
    from tumorlens.readers import read_frames
    from tumorlens.refusal import check_image

    pr = None
    if a.model:
        from tumorlens.predict import DISTANCE_REASON, Predictor

        pr = Predictor(a.model)
    L = ["# Refusal rates", "", DISCLAIMER, "", f"Measured by `benchmarks/refusal_rates.py`"
         f"{' with model `' + a.model + '`' if a.model else ' (statistics only, no model)'}; "
         f"torch threads {a.threads}.", ""]
    # ---- probes
    rows = []
    for name, data, fn in probes():
        fr = read_frames(data, name=fn)[0]
        stat = check_image(fr.gray, fr.info)
        end = feat = None
        if pr is not None:
            recs = pr.predict_bytes(data, fn)
            end = "rejected" if all(r.status == "rejected" for r in recs) else ",".join(sorted({r.status for r in recs}))
            if pr.ood is not None:  # the feature checks on their own, as if the statistics checks were off
                f = features(pr, fr)
                feat = distance_ratio(pr, f) > 1 or lookalike_margin(pr, f) > 0
        rows.append((name, stat, end, feat))
    n_stat = sum(r[1] is not None for r in rows)
    L += ["## Non-MRI probes", "", f"- refused by header/statistics checks: **{n_stat} / {len(rows)}**"]
    if pr is not None:
        n_end = sum(r[2] == "rejected" for r in rows)
        L.append(f"- refused end to end (statistics + feature checks): **{n_end} / {len(rows)}**")
        if pr.ood is not None:
            n_feat = sum(bool(r[3]) for r in rows)
            L.append(f"- refused by the feature checks alone (feature distance or look-alike detector; statistics "
                     f"checks off): **{n_feat} / {len(rows)}**")
    L += ["", "| probe | statistics / header reason | end to end | feature checks alone |", "|---|---|---|---|"]
    L += [f"| {n} | {s or '**passed**'} | {e or ''} | {'' if f is None else ('refused' if f else '**passed**')} |"
          for n, s, e, f in rows]
    # ---- the same kind of files with their DICOM tags gone
    if pr is not None:
        stripped = stripped_dicom_pngs()
        if stripped:
            got = [(name, pr.predict_bytes(data, name + ".png")[0]) for name, data in stripped]
            n_ref = sum(r.status == "rejected" for _, r in got)
            L += ["", "## pydicom's test images without their tags", "",
                  "Every local pydicom test file with pixel data (middle frame, min-max scaled to 8 bits, saved as "
                  "PNG; identical images once), so the Modality/BodyPart checks cannot help: only the statistics "
                  "and the feature checks can refuse them. The modality is the file's own tag.", "",
                  f"- refused: **{n_ref} / {len(got)}**", "", "| file (modality) | status | reason or label |",
                  "|---|---|---|"]
            L += [f"| {n} | {r.status if r.status == 'rejected' else '**' + r.status + '**'} | "
                  f"{r.reason if r.status == 'rejected' else f'{r.label} ({r.confidence:.2f})'} |" for n, r in got]
    # ---- a second probe set that no limit was set on
    if pr is not None:
        from probes import skimage_images

        sk = skimage_images()
        if sk:
            L += ["", "## scikit-image's bundled images", "",
                  "Every image file in scikit-image's `skimage/data` folder that Pillow reads, and a grayscale copy "
                  "of each colour one (`tests/probes.py`, `skimage_images`): photographs, textures, text, microscopy, "
                  "a retina, the Shepp-Logan phantom. None of the statistics limits or the feature-distance "
                  "threshold was set on them; the look-alike detector, though, was fitted on variants of 17 of "
                  "these photographs (`tumorlens/lookalike.py`), so for it they are not out of sample "
                  "(`benchmarks/lookalike_check.md` measures photographs it never saw). distance / threshold: the "
                  "feature distance over the checkpoint's threshold (above 1 is refused by it; the margin left); "
                  "look-alike margin: the detector's score minus its threshold (above 0 is refused by it).",
                  ""]
            got = []
            for name, data, fn in sk:
                recs = pr.predict_bytes(data, fn)
                fr = read_frames(data, name=fn)[0]
                f = features(pr, fr)
                ratio = distance_ratio(pr, f) if pr.ood is not None else float("nan")
                got.append((name, recs[0], ratio, check_image(fr.gray, fr.info) is None, lookalike_margin(pr, f)))
            n_ref = sum(g[1].status == "rejected" for g in got)
            only = sorted((g for g in got if g[3]), key=lambda g: g[2])
            L += [f"- refused: **{n_ref} / {len(got)}**; {len(only)} pass the header and statistics checks, so only "
                  f"the feature checks refuse them; the closest to the distance threshold: "
                  + ", ".join(f"{g[0]} {g[2]:.2f}" for g in only[:3]), "",
                  "| image | status | reason or label | distance / threshold | look-alike margin |",
                  "|---|---|---|---|---|"]
            L += [f"| {n} | {r.status if r.status == 'rejected' else '**' + r.status + '**'} | "
                  f"{r.reason if r.status == 'rejected' else f'{r.label} ({r.confidence:.2f})'} | {q:.2f} | {m:.2f} |"
                  for n, r, q, _, m in got]
    # ---- Kaggle
    paths = sorted(glob.glob(os.path.join(a.data, "*", "*", "*.jpg")))
    L += ["", "## Real MRI: Kaggle brain-tumour MRI dataset", ""]
    if not paths:
        L.append(f"not measured: {a.data} not found")
    else:
        t = time.perf_counter()
        refused, reasons = [], Counter()
        for p in paths:
            fr = read_frames(p, draft=256)[0]
            r = check_image(fr.gray, fr.info)
            if r:
                refused.append((p, r))
                reasons[r.split(" [")[0]] += 1
        dt = time.perf_counter() - t
        L.append(f"- statistics only: **{len(refused)} / {len(paths)} refused ({100 * len(refused) / len(paths):.2f} %)**"
                 f" ({dt:.0f} s)")
        L += [f"  - {k}: {v}" for k, v in reasons.most_common()]
        if pr is not None:
            # the set's CT slices (benchmarks/kaggle_ct.csv, from ct_in_kaggle.py) are not MRI: counted apart
            ct = set(read_ct_list(a.ct_list))  # paths
            root = Path(a.data)
            is_ct = lambda path: Path(path).relative_to(root).as_posix() in ct  # noqa: E731
            test = [p for p in paths if "/Testing/" in p.replace(os.sep, "/")]
            t = time.perf_counter()
            st, why, st_ct = Counter(), Counter(), Counter()
            for r in pr.predict_paths(test, batch=64):
                if is_ct(r.path):
                    st_ct[r.status] += 1
                    continue
                st[r.status] += 1
                if r.status == "rejected":
                    why[("look-alike" if "look-alike score" in (r.reason or "") else "feature distance")
                        if (r.reason or "").startswith(DISTANCE_REASON) else "statistics"] += 1
            dt = time.perf_counter() - t
            n = sum(st.values())
            L.append(f"- end to end on the {n} Testing images that are MRI: **{st['rejected']} refused "
                     f"({100 * st['rejected'] / n:.2f} %)** - {dict(why)}; statuses {dict(st)} ({dt:.0f} s)")
            L.append(f"- and on the {sum(st_ct.values())} Testing images listed as CT in `{Path(a.ct_list).name}`: "
                     f"**{st_ct['rejected']} refused**; statuses {dict(st_ct)}")
            # the model's own held-out part, with the refused files named so anyone can look at them
            rows = pr.ckpt.split_rows("test") if pr.ckpt.meta.get("split", {}).get("manifest") else []
            if rows:
                t = time.perf_counter()
                recs = list(pr.predict_paths([str(root / r[0]) for r in rows], batch=64))
                sha = {str(root / r[0]): r[4] for r in rows}
                mri = [r for r in recs if not is_ct(r.path)]
                cts = [r for r in recs if is_ct(r.path)]
                bad = [r.path for r in mri if r.status == "rejected"]
                dt = time.perf_counter() - t
                L.append(f"- end to end on the model's own held-out test part, its {len(mri)} MRI slices: "
                         f"**{len(bad)} / {len(mri)} refused ({100 * len(bad) / max(1, len(mri)):.2f} %)**, "
                         f"{len({sha[b] for b in bad})} distinct images by sha256 ({dt:.0f} s)")
                L += [f"  - `{Path(b).relative_to(root).as_posix()}` (sha256 {sha[b][:12]})" for b in bad]
                L.append(f"- and its {len(cts)} slices listed as CT: **{sum(r.status == 'rejected' for r in cts)} "
                         f"refused**; statuses {dict(Counter(r.status for r in cts))}")
            ood = pr.ckpt.meta.get("refusal", {})
            if ood:
                pooled = ood.get("ood_threshold_on") == "train+val"
                scores = (f"{ood['n_train']} training and {ood['n_val']} validation scores together" if pooled
                          else f"{ood['n_val']} validation scores")
                L.append(f"- feature-distance threshold: {ood['ood']['threshold']:.4g} = the "
                         f"{100 * ood['ood_quantile']:.1f}th percentile of {scores} "
                         f"(val refusal {100 * ood['ood_val_refusal_rate']:.2f} %"
                         + (f", train refusal {100 * ood['ood_train_refusal_rate']:.2f} %" if pooled else "") + ")")
                look = ood.get("lookalike")
                if look:
                    L.append(f"- look-alike threshold: {look['threshold']:.4g} = the {100 * look['quantile']:.1f}th "
                             f"percentile of the same slices' scores (val refusal {100 * look['val_refusal_rate']:.2f} "
                             f"%, train refusal {100 * look['train_refusal_rate']:.2f} %); fitted against "
                             f"{look['negatives']['n']} negative images, {100 * look['negatives_refused']:.1f} % of "
                             f"them refused")
    from tumorlens.fileio import atomic_write_text

    atomic_write_text(Path(a.out), "\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
