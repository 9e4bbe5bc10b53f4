"""Reproduce the published numbers on ../shared: official, stratified and clean splits (3 seeds), and the
CNN-only ablation on the same clean splits with a paired McNemar test. Writes benchmarks/results.md.

    python benchmarks/run_benchmarks.py [--data DIR] [--runs runs/bench] [--threads 2] [--only NAME ...]
                                        [--set key=value ...] [--results FILE]

Every run uses the default recipe (TrainConfig()), or that recipe with `--set` overrides (a variant: give it
its own --runs and --results). Finished runs are reused and interrupted ones resume, so the command can be
re-run until everything is done; results.md is rewritten from what is finished. Settings that change only
prediction (INFERENCE_ONLY) may differ from a finished run's: it is re-scored with the requested ones.
Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tumorlens.audit import find_duplicates
from tumorlens.fileio import atomic_write_text
from tumorlens.config import TrainConfig
from tumorlens.data import load_dataset
from tumorlens.evaluate import score
from tumorlens.masks import training_masks
from tumorlens.metrics import mcnemar
from tumorlens.predict import Predictor
from tumorlens.split import make_split, read_groups_csv, read_split, write_split
from tumorlens.train import CKPT_FILE, STATE_FILE, select, split_manifest, train

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def plan() -> list[dict]:
    runs = [{"name": "official-lstm-s0", "strategy": "official", "seed": 0, "head": "lstm"},
            {"name": "stratified-lstm-s0", "strategy": "stratified", "seed": 0, "head": "lstm"}]
    for s in SEEDS:
        runs.append({"name": f"clean-lstm-s{s}", "strategy": "clean", "seed": s, "head": "lstm"})
        runs.append({"name": f"clean-pool-s{s}", "strategy": "clean", "seed": s, "head": "pool"})
    return runs


def run_one(r: dict, ds, audit, groups, runs_dir: Path, threads: int, sets: tuple[str, ...] = ()) -> dict:
    out = runs_dir / r["name"]
    out.mkdir(parents=True, exist_ok=True)
    split_csv = runs_dir / f"split-{r['strategy']}-s{r['seed']}.csv"
    if split_csv.exists():
        rows = read_split(split_csv)
    else:
        rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                          audit, r["strategy"], seed=r["seed"], groups=groups if r["strategy"] == "clean" else None)
        write_split(rows, split_csv)
    cfg = TrainConfig().with_overrides([*sets, f"seed={r['seed']}", f"threads={threads}", f"model.head={r['head']}"])
    run = out / "run"
    ckpt = run / CKPT_FILE
    if ckpt.exists() and not (run / STATE_FILE).exists():
        check_reusable(run, cfg, runs_dir)
    if not ckpt.exists() or (run / STATE_FILE).exists():
        masks, guidance = training_masks(ds, cfg.preprocess, cfg.seg_weight)
        meta = {"split": {"strategy": r["strategy"], "manifest": split_manifest(rows)}, "mask_guidance": guidance}
        train(cfg, select(ds, rows, "train", masks=masks), select(ds, rows, "val"), run,
              resume=(run / STATE_FILE).exists(),
              meta=meta, on_epoch=lambda e: print(f"  {r['name']} epoch {e['epoch']} val {e['val_acc']:.4f}",
                                                  file=sys.stderr, flush=True))
    pr = Predictor(ckpt, refuse=False)
    pr.flip_average = cfg.flip_average
    test = select(ds, rows, "test")
    ev = score(pr, test.x[:, 0].numpy(), test.y.numpy(), test.paths)
    m = ev.metrics
    res = {**r, "n_test": m["n"], "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
           "macro_f1": m["macro_f1"], "macro_auc": m["roc_auc"]["macro"],
           "train_seconds": pr.ckpt.meta.get("train_seconds"), "threads": pr.ckpt.meta.get("threads"),
           "best_epoch": pr.ckpt.meta.get("best_epoch"),
           # the torch that trained the run (its checkpoint's record), not the one scoring it: a run trained
           # under another torch build can differ by a few test slices (docs/experiments.md)
           "torch": (pr.ckpt.meta.get("versions") or {}).get("torch", "?"),
           "correct": (ev.probs.argmax(1) == ev.y_true).astype(int).tolist(), "paths": test.paths}
    atomic_write_text(out / "result.json", json.dumps(res) + "\n")
    return res


def check_reusable(run: Path, cfg: TrainConfig, runs_dir: Path) -> None:
    """A finished run is reused only if it was trained by the requested recipe: a changed default must not
    mix old and new runs in one results table. Settings in INFERENCE_ONLY do not count."""
    old = TrainConfig.from_dict(json.loads((run / "config.json").read_text())).with_inference_of(cfg)
    if old != cfg:
        raise SystemExit(f"{run}: trained with another recipe than the requested one "
                         f"(differs in: {', '.join(_diff(old.to_dict(), cfg.to_dict()))}); "
                         f"move {runs_dir} aside or pass --runs NEW_DIR")


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings in which two config dicts differ."""
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(prefix + k)
    return out


def write_results(results: list[dict], path: Path, leak: float | None = None, sets: tuple[str, ...] = ()) -> None:
    """leak: share of the official Testing images with a copy in Training (the audit's summary); sets: the
    recipe's overrides of the default, if any."""
    recipe = "default recipe" + (f" with {', '.join(f'`{x}`' for x in sets)}" if sets else "")
    command = "python benchmarks/run_benchmarks.py" + "".join(f" --set {x}" for x in sets)
    lines = ["# Benchmark results", "",
             f"Research use only - not a medical device. Regenerate with `{command}` "
             f"({recipe}, 64x64, this 2-core machine; train seconds are wall time at the thread count shown; "
             f"torch: the version that trained the run).",
             "", "| split | model | seed | n test | accuracy (95% CI) | macro-F1 | macro-AUC | train s | threads | torch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lo, hi = r["accuracy_ci"]
        lines.append(f"| {r['strategy']} | {'CNN-LSTM' if r['head'] == 'lstm' else 'CNN only (ablation)'} | "
                     f"{r['seed']} | {r['n_test']} | {r['accuracy']:.4f} ({lo:.4f}-{hi:.4f}) | {r['macro_f1']:.4f} | "
                     f"{r['macro_auc']:.4f} | {r['train_seconds']} | {r['threads']} | {r.get('torch', '?')} |")
    by = {r["name"]: r for r in results}
    clean = [by[f"clean-lstm-s{s}"] for s in SEEDS if f"clean-lstm-s{s}" in by]
    lines.append("")
    if clean:
        lines.append(f"Clean split, CNN-LSTM, mean of {len(clean)} seed(s): accuracy "
                     f"{np.mean([r['accuracy'] for r in clean]):.4f}, macro-F1 {np.mean([r['macro_f1'] for r in clean]):.4f}, "
                     f"macro-AUC {np.mean([r['macro_auc'] for r in clean]):.4f}.")
    if "official-lstm-s0" in by and clean:
        gap = by["official-lstm-s0"]["accuracy"] - np.mean([r["accuracy"] for r in clean])
        share = f"{100 * leak:.0f}%" if leak is not None else "most"
        lines.append(f"The official split scores {100 * gap:+.1f} points against the clean split: on the official "
                     f"split {share} of the Testing images have a copy in Training, so that number is not a measure "
                     f"of generalisation.")
    if "stratified-lstm-s0" in by and clean:
        gap = by["stratified-lstm-s0"]["accuracy"] - np.mean([r["accuracy"] for r in clean])
        lines.append(f"The reference design's stratified random split scores {100 * gap:+.1f} points against the "
                     f"clean split: it puts copies and adjacent slices of one patient on both sides.")
    lines += ["", "## CNN-LSTM vs CNN-only ablation (paired McNemar test on the same clean test images)", "",
              "| seed | LSTM acc | CNN-only acc | b (LSTM right only) | c (CNN right only) | p |", "|---|---|---|---|---|---|"]
    for s in SEEDS:
        a, b = by.get(f"clean-lstm-s{s}"), by.get(f"clean-pool-s{s}")
        if a and b and a["paths"] == b["paths"]:
            t = mcnemar(np.array(a["correct"], bool), np.array(b["correct"], bool))
            lines.append(f"| {s} | {a['accuracy']:.4f} | {b['accuracy']:.4f} | {t['b']} | {t['c']} | {t['p_value']:.3g} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--runs", default=str(ROOT / "runs/bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--results", default=str(ROOT / "benchmarks/results.md"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a variant of the default recipe, as `tumorlens train --set` (repeatable)")
    a = ap.parse_args()
    sets = tuple(a.set)
    # a bad setting fails here, in one line, before any work
    pre = TrainConfig().with_overrides(list(sets)).preprocess
    torch.set_num_threads(a.threads)
    runs_dir = Path(a.runs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(a.data, pre)  # with the variant's preprocessing (`--set preprocess.…`)
    audit = find_duplicates(ds)
    groups = read_groups_csv(Path(a.data) / "groups-figshare-fold.csv")
    s = audit.summary()
    leak = s["test_with_copy_in_train"] / s["test_images"] if s.get("test_images") else None
    results = []
    for r in plan():
        if a.only and r["name"] not in a.only:
            done = runs_dir / r["name"] / "result.json"
            if done.exists():
                results.append(json.loads(done.read_text()))
            continue
        t0 = time.perf_counter()
        results.append(run_one(r, ds, audit, groups, runs_dir, a.threads, sets))
        print(f"{r['name']}: accuracy {results[-1]['accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        write_results(results, Path(a.results), leak, sets)
    write_results(results, Path(a.results), leak, sets)
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
