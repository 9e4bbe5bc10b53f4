"""Tumours on other MRI sequences: does the model call a T2 or FLAIR tumour slice "no tumour"?

    python benchmarks/sequences.py split --source runs/bench/split-clean-s0.csv --out SPLIT.csv
                                         [--train-half A|B [--repeat K]]
    python benchmarks/sequences.py score [--model CKPT ...] [--out benchmarks/sequences.md] [--keep]

The Kaggle tumour classes are contrast-enhanced T1 slices (dark fluid), while its no-tumour class is mostly
T2 and FLAIR (bright fluid): "bright ventricles" could tell many no-tumour slices from the tumour ones, and
a model that learns it calls tumour scans of other sequences "no tumour" - the shortcut the README warns of.
`kaggle_non_t1_tumours.csv` lists the 26 tumour slices of the set that are not contrast-enhanced T1 slices:
every tumour slice outside the figshare copies (273) was looked at by eye on 2026-11-27 and the ones with another
look kept (all meningioma; near-copies of each other in places, 19 duplicate groups). The `kind` column is
that look, by eye and not by a radiologist: T2 (bright fluid, 13), FLAIR (dark fluid, bright oedema, 8),
diffusion (1), unclear (4, two of which may be T1 after all).

`split` moves every group that holds a listed slice to the test side of a split file (all 26 land in test,
nothing else moves), so a model trained on it has seen no tumour on those sequences. With `--train-half`, one
half of those groups goes to the train side instead (each row `--repeat` times: oversampled), the other to
test: does training on some T2 tumours teach the model the others? `score` sends the listed
slices on each model's test side through `Predictor` (refusal and abstention on) and reports how many it
calls "no tumour", together with the model's accuracy on the rest of its test part (the CT slices of
`kaggle_ct.csv` left out; a refused slice counts as wrong, an uncertain one by its label).

Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch
from ct_in_kaggle import read_list as read_ct_list

from tumorlens.config import DISCLAIMER, TumorlensError
from tumorlens.fileio import atomic_write_text
from tumorlens.metrics import wilson_ci
from tumorlens.predict import Predictor
from tumorlens.split import SplitRow, read_split
from tumorlens.split import write_split as write_split_csv

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "benchmarks" / "kaggle_non_t1_tumours.csv"
DATA = ROOT.parent / "shared/data/brain-tumor-mri-dataset"


def read_list(path: str | Path = LIST) -> dict[str, tuple[str, str]]:
    """path (relative to the dataset root) -> (sha256, kind) of the listed non-T1 tumour slices."""
    with open(path, newline="") as f:
        return {r["path"]: (r["sha256"], r["kind"]) for r in csv.DictReader(f)}


def halves(rows: list[SplitRow], listed: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The listed slices' groups in two halves: every other group in sorted order, the T2 groups and the rest
    apart, so that each half holds about half of the T2 slices."""
    kinds: dict[str, set[str]] = {}
    for r in rows:
        if r.path in listed:
            kinds.setdefault(r.group, set()).add(listed[r.path][1])
    t2 = sorted(g for g, k in kinds.items() if "T2" in k)
    rest = sorted(g for g, k in kinds.items() if "T2" not in k)
    return t2[0::2] + rest[0::2], t2[1::2] + rest[1::2]


def write_split(source: str, out: str, listed: dict[str, tuple[str, str]], train_half: str | None = None,
                repeat: int = 1) -> str:
    """All listed slices' groups to the test side; or, with `train_half` (A or B), that half's groups to the
    train side, each row `repeat` times (an oversampling experiment), and the other half to test."""
    rows = read_split(source)
    missing = set(listed) - {r.path for r in rows}
    if missing:
        raise TumorlensError(f"{source}: {len(missing)} listed slices are not in this split, e.g. {min(missing)}")
    groups = {r.group for r in rows if r.path in listed}
    a, b = halves(rows, listed)
    train = set() if train_half is None else set(a if train_half == "A" else b)
    moved = Counter(r.split for r in rows if r.group in groups)
    out_rows = []
    for r in rows:
        if r.group in train:
            out_rows += [replace(r, split="train")] * repeat
        elif r.group in groups:
            out_rows.append(replace(r, split="test"))
        else:
            out_rows.append(r)
    write_split_csv(out_rows, out)
    n_train = sum(r.group in train for r in rows)
    return (f"{out}: {sum(r.group in groups for r in rows) - n_train} slices of {len(groups) - len(train)} "
            "groups on the test side"
            + (f", {n_train * repeat} rows of {len(train)} groups on the train side (x{repeat})" if train else "")
            + f" (were {dict(moved)})")


HEADER = ("model", "contrast", "sequence", "t2", "strip", "n", "missed", "missed by kind", "right", "statuses",
          "accuracy on the rest of the test part")


def score(model: str, data: Path, listed: dict[str, tuple[str, str]], ct: set[str]) -> dict:
    pr = Predictor(model)
    test = [(p, lab) for p, lab, *_ in pr.ckpt.split_rows("test") if p not in ct]
    seq = [(p, lab) for p, lab in test if p in listed]
    rest = [(p, lab) for p, lab in test if p not in listed]
    paths = [p for p, _ in seq + rest]  # one frame per JPEG: one record per path, in order
    recs = dict(zip(paths, pr.predict_paths([str(data / p) for p in paths], workers=0)))
    status = Counter(recs[p].status for p, _ in seq)
    missed = sum(recs[p].label == "notumor" for p, _ in seq)
    by_kind = {k: (sum(recs[p].label == "notumor" for p, _ in seq if listed[p][1] == k),
                   sum(listed[p][1] == k for p, _ in seq)) for k in sorted({listed[p][1] for p, _ in seq})}
    right = sum(recs[p].label == lab for p, lab in seq)
    rest_right = sum(recs[p].label == lab for p, lab in rest)
    return {"model": model, "sha": pr.ckpt.sha256[:12], "sequence": pr.ckpt.config.sequence, "t2": pr.ckpt.config.t2,
            "contrast": pr.ckpt.config.contrast, "strip": pr.ckpt.config.strip, "n": len(seq), "missed": missed,
            "right": right, "status": status, "by_kind": by_kind, "rest_n": len(rest), "rest_right": rest_right,
            "missed_paths": sorted(p for p, _ in seq if recs[p].label == "notumor")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="a split with every listed slice's group on the test side")
    sp.add_argument("--source", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--train-half", choices=("A", "B"),
                    help="put this half of the listed groups on the train side and the other half on test")
    sp.add_argument("--repeat", type=int, default=1, help="with --train-half: each of its rows this many times")
    sc = sub.add_parser("score", help="the listed slices on each model's test side, through Predictor")
    sc.add_argument("--model", action="append", help="a checkpoint, repeatable (default: the bundled model)")
    sc.add_argument("--data", default=str(DATA))
    sc.add_argument("--out", default=str(ROOT / "benchmarks/sequences.md"))
    sc.add_argument("--keep", action="store_true",
                    help="keep the rows of --out's models that are not scored now (their runs may be gone); a model "
                         "scored now replaces its row in place")
    for p in (sp, sc):
        p.add_argument("--list", default=str(LIST))
    a = ap.parse_args()
    listed = read_list(a.list)
    if a.cmd == "split":
        if a.repeat < 1 or (a.repeat > 1 and not a.train_half):
            raise TumorlensError("--repeat needs --train-half and a count >= 1")
        print(write_split(a.source, a.out, listed, a.train_half, a.repeat))
        return 0
    t0 = time.perf_counter()
    data = Path(a.data)
    for p, (sha, _) in listed.items():  # the list names exact files: a changed copy of the set is not this test
        if hashlib.sha256((data / p).read_bytes()).hexdigest() != sha:
            raise TumorlensError(f"{data / p}: not the file listed in {a.list} (sha256 differs)")
    ct = set(read_ct_list())
    rows: dict[str, str] = {}  # model as given -> table row, in table order
    kept: list[str] = []
    if a.keep and Path(a.out).exists():
        for line in Path(a.out).read_text().splitlines():
            got = re.match(r"^\| `([^`]+)` \(", line)
            if got:
                cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
                if len(cells) == len(HEADER) - 1:  # written before the t2 column: those models had no t2 rendering
                    cells.insert(HEADER.index("t2"), "0")
                    line = "| " + " | ".join(cells) + " |"
                rows[got[1]] = line
                kept.append(got[1])
    models = a.model or [None]
    for m in models:
        s = score(m, data, listed, ct)
        if not s["n"]:
            raise TumorlensError(f"{m or 'the bundled model'}: none of the listed slices is on its test side (train it on "
                                 f"`sequences.py split`)")
        lo, hi = wilson_ci(s["missed"], s["n"])
        rlo, rhi = wilson_ci(s["rest_right"], s["rest_n"])
        st = ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items()))
        kinds = ", ".join(f"{k} {m}/{n}" for k, (m, n) in s["by_kind"].items())
        rows[m or "bundled"] = (
            f"| `{m or 'bundled'}` ({s['sha']}) | {s['contrast']:g} | {s['sequence']:g} | {s['t2']:g} | {s['strip']:g} "
            f"| {s['n']} | **{s['missed']}** ({100 * s['missed'] / s['n']:.0f}%, "
            f"95% CI {100 * lo:.0f}-{100 * hi:.0f}%) | {kinds} | {s['right']} | {st} "
            f"| {s['rest_right'] / s['rest_n']:.3f} ({rlo:.3f}-{rhi:.3f}, n {s['rest_n']}) |")
    kept = [k for k in kept if k not in {m or "bundled" for m in models}]
    listed_models = [k for k in rows if k != "bundled"]
    text = "\n".join([
        "# Tumours on other MRI sequences (T2, FLAIR, diffusion)", "",
        f"{DISCLAIMER} Regenerate with `python benchmarks/sequences.py score "
        + " ".join(f"--model {m}" for m in listed_models) + "` (how the models were trained: README, "
        "\"other sequences\")."
        + (f" Rows kept from this file's earlier version (`--keep`), not scored in this run: "
           + ", ".join(f"`{k}`" for k in kept) + "." if kept else ""), "",
        f"The {len(listed)} non-T1 tumour slices of the Kaggle set (`{Path(a.list).name}`, all meningioma, "
        "found by eye; `kind` by eye) on each model's test side, through `Predictor` with refusal and abstention on. missed = "
        "called \"no tumour\"; right = called meningioma. The last column is the accuracy on the rest of the "
        f"model's test part (its CT slices left out). {time.perf_counter() - t0:.0f} s with "
        f"{torch.get_num_threads()} torch thread(s).", "",
        "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER), *rows.values(), ""])
    atomic_write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
