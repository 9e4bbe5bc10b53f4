"""How well does the look-alike detector generalise to photographs it was not fitted on?

    python benchmarks/lookalike_check.py [--model CKPT] [--data DIR] [--out benchmarks/lookalike_check.md]
                                         [--threads N]

The detector (`tumorlens/lookalike.py`) is a logistic regression on the model's pooled features, fitted on the
training slices (their turns and augmented copies too) against variants of a few bundled photographs and generated
textures. Its own
negatives say nothing about photographs it never saw, so this script measures that two ways:

1. **Leave one source out**: for each source of negatives (a photograph or a texture kind), the detector is
   fitted again without that source's variants, thresholded as the product does (`lookalike.QUANTILE` of the
   training and validation slices' scores), and scored on the left-out variants that pass the image checks;
   the test part's MRI slices refused by that detector are counted too.
2. **Photographs of another package**: scikit-learn's two sample photographs (`china`, `flower`; skipped if
   scikit-learn is not installed), in as many variants as each source of the fit, through the full prediction
   path (`Predictor.predict_gray`: image checks, feature distance, look-alike detector).

The model's own training, validation and test slices come from its split manifest (`Checkpoint.split_rows`),
the listed CT slices (`benchmarks/kaggle_ct.csv`) left out as `build_model.py` leaves them out of the fit.
Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from ct_in_kaggle import LIST as CT_LIST  # noqa: E402
from ct_in_kaggle import read_list as read_ct_list  # noqa: E402
from probe_sets import LAYERS, layer  # noqa: E402

from tumorlens.config import DISCLAIMER  # noqa: E402
from tumorlens.fileio import atomic_write_text  # noqa: E402

HELD_OUT = ("china", "flower")  # scikit-learn's sample photographs, in no fit


def slices(ck, data: str) -> dict[str, np.ndarray]:
    """The model's train / val / test inputs (N, S, S), without the listed CT slices."""
    from tumorlens.data import load_dataset
    from tumorlens.split import SplitRow
    from tumorlens.train import listed_in, select

    rows = [SplitRow(*r) for r in ck.split_rows()]
    ds = load_dataset(data, ck.preprocess)
    ct = set(read_ct_list(CT_LIST).values())
    out = {}
    for side in ("train", "val", "test"):
        part = select(ds, rows, side)
        out[side] = part.x[~listed_in(ds, part, ct), 0].numpy()
    return out


def held_out_photos(per_source: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(source, uint8 variant) of scikit-learn's sample photographs, made as the detector's negatives are."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return []
    from PIL import Image

    from tumorlens.lookalike import _variant

    rng = np.random.default_rng(seed)
    out = []
    for name, rgb in zip(HELD_OUT, load_sample_images().images):
        gray = np.asarray(Image.fromarray(rgb).convert("L"))
        out += [(name, _variant(gray, rng)) for _ in range(per_source)]
    return out


def main() -> int:
    from tumorlens.lookalike import PER_SOURCE, QUANTILE, SEED, TEXTURES, copies, fit_detector, negative_inputs
    from tumorlens.predict import Predictor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the bundled model)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/lookalike_check.md"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not Path(a.data).is_dir():
        sys.exit(f"{a.data}: no such dataset folder")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    pr = Predictor(a.model)
    if pr.lookalike is None:
        sys.exit(f"{a.model or 'the bundled model'}: holds no look-alike detector")
    look_meta = pr.ckpt.meta["refusal"]["lookalike"]
    c = float(look_meta.get("c", 0.03))
    x = slices(pr.ckpt, a.data)
    feats = {k: pr.logits_and_features(v)[1] for k, v in x.items()}
    xr, xa = copies(x["train"], pr.ckpt.config)
    pos = np.concatenate([feats["train"], pr.logits_and_features(xr)[1], pr.logits_and_features(xa)[1]])
    # the negatives that pass the image checks, by source (negative_inputs gives them source by source)
    xn, note = negative_inputs(pr.pre)
    passed = note["passed_image_checks"]
    parts = np.split(xn, np.cumsum(list(passed.values()))[:-1])
    neg = {k: pr.logits_and_features(v)[1] for k, v in zip(passed, parts)}
    rows = []
    for left in sorted(neg):
        det = fit_detector(pos, np.concatenate([f for k, f in neg.items() if k != left]), feats["train"],
                           feats["val"], c)
        caught = det.score(neg[left]) > det.threshold
        rows.append((left, "texture" if left in TEXTURES else "photograph", len(caught), int(caught.sum()),
                     int((det.score(feats["test"]) > det.threshold).sum())))
    # scikit-learn's photographs through the full path of the model as it ships
    held = held_out_photos(PER_SOURCE, SEED + 1)
    held_counts: dict[str, Counter] = {}
    for name, img in held:
        rec = pr.predict_gray(img.astype(np.float32), path=name)
        held_counts.setdefault(name, Counter())[layer(rec.reason) if rec.status == "rejected" else rec.status] += 1
    secs = time.perf_counter() - t0
    sha = (pr.ckpt.sha256 or hashlib.sha256(b"").hexdigest())[:12]
    cmd = "python benchmarks/lookalike_check.py" + (f" --model {a.model}" if a.model else "")
    L = ["# Look-alike detector: photographs it was not fitted on", "", DISCLAIMER, "",
         f"Measured by `{cmd}` with model `{a.model or 'bundled'}` (sha256 {sha}); torch threads {a.threads}; "
         f"{secs:.0f} s. See the script's docstring for what is measured.", "",
         f"Slices: {len(x['train'])} train (+ {len(xr)} turned and {len(xa)} augmented), "
         f"{len(x['val'])} val, {len(x['test'])} test (the listed CT slices left out); regularisation c = {c:g}; "
         f"threshold: the {100 * QUANTILE:.1f}th percentile of the train and val slices' scores.", "",
         "## Each source of negatives left out of the fit in turn", "",
         "Refused: the left-out source's variants that pass the image checks and that the detector fitted without "
         "them refuses (the feature distance not counted). Test MRI refused: the test slices that detector "
         "refuses.", "",
         "| left out | kind | variants passing the image checks | refused | test MRI refused |",
         "|---|---|---|---|---|"]
    L += [f"| {n} | {k} | {m} | {r} ({100 * r / max(m, 1):.0f}%) | {t} / {len(x['test'])} |" for n, k, m, r, t in rows]
    tot_m, tot_r = sum(r[2] for r in rows if r[1] == "photograph"), sum(r[3] for r in rows if r[1] == "photograph")
    L += ["", f"Photographs left out: **{tot_r} of {tot_m}** variants refused ({100 * tot_r / max(tot_m, 1):.1f}%).",
          "", "## scikit-learn's sample photographs through the shipped model", ""]
    if not held:
        L.append("scikit-learn is not installed: skipped.")
    else:
        L += ["Variants made as the detector's negatives are (another seed), answered by `Predictor.predict_gray` "
              "with every refusal layer on; counts by the layer that refused, or the status.", "",
              "| photograph | variants | image checks | feature distance | look-alike | uncertain | ok |",
              "|---|---|---|---|---|---|---|"]
        for name, cnt in held_counts.items():
            L.append(f"| {name} | {sum(cnt.values())} | {cnt[LAYERS[2]]} | {cnt[LAYERS[1]]} | {cnt[LAYERS[0]]} | "
                     f"{cnt['uncertain']} | {cnt['ok']} |")
    atomic_write_text(Path(a.out), "\n".join(L) + "\n")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
