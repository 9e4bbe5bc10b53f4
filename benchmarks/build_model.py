"""Build the bundled model: clean split -> train (default recipe) -> abstention/refusal -> evaluate -> install.

    python benchmarks/build_model.py [--data ../shared/data/brain-tumor-mri-dataset] [--out runs/bundled]
                                     [--install] [--reuse-run RUN_DIR] [--set key=value ...]

Resumable: an interrupted training continues where it stopped; finished steps are not redone.
The slices listed in benchmarks/kaggle_ct.csv (CT, found by ct_in_kaggle.py) are left out of the abstention
and refusal fits, and the test part's refusals are counted for its MRI and CT slices apart.
--install copies the checkpoint (with its test metrics) into src/tumorlens/models/ and regenerates
MODEL_CARD.md. --reuse-run takes the weights of a finished run (e.g. runs/bench/clean-lstm-s0/run of
run_benchmarks.py) instead of training again, after checking that it trained this exact recipe on this exact
split: training is deterministic, so the weights are the ones this script would train.
Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from ct_in_kaggle import LIST as CT_LIST
from ct_in_kaggle import read_list as read_ct_list

from tumorlens.audit import find_duplicates
from tumorlens.checkpoint import BUNDLED, load_checkpoint, save_checkpoint
from tumorlens.config import TrainConfig, flat_settings
from tumorlens.data import load_dataset
from tumorlens.evaluate import evaluate
from tumorlens.masks import training_masks
from tumorlens.predict import Predictor
from tumorlens.refusal import finalize_checkpoint
from tumorlens.split import make_split, read_groups_csv, read_split, split_table, write_split
from tumorlens.train import CKPT_FILE, STATE_FILE, calibrate, listed_in, select, split_manifest, train

ROOT = Path(__file__).resolve().parents[1]


def recipe_diff(have: TrainConfig, want: TrainConfig) -> list[str]:
    """The training settings in which `have` differs from `want`, as 'key value (wanted value)'; settings used
    only at inference are ignored (a finished run may predate them)."""
    h, w = flat_settings(have.with_inference_of(want).to_dict()), flat_settings(want.to_dict())
    return [f"{k} {h.get(k)!r} (wanted {w.get(k)!r})" for k in sorted(set(h) | set(w)) if h.get(k) != w.get(k)]


def check_existing_run(run: Path, cfg: TrainConfig, reuse_run: str | None) -> None:
    """Refuse to go on from a finished run in --out that is not what this call would make: one of an older
    recipe (a changed default), or, with --reuse-run, weights taken from elsewhere. Without this check a stale
    run/ was silently re-fitted and installed as if it were today's recipe."""
    ckpt = run / CKPT_FILE
    if not ckpt.exists() or (run / STATE_FILE).exists():
        return
    have = load_checkpoint(ckpt)
    diff = recipe_diff(have.config, cfg)
    if diff:
        sys.exit(f"{run}: holds a finished run of another recipe than the one asked for ({'; '.join(diff)}); "
                 f"delete it or choose another --out")
    if reuse_run and have.meta.get("reused_from") != str(reuse_run):
        sys.exit(f"{run}: already holds finished weights, not those of {reuse_run}; delete it or choose another "
                 f"--out")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    ap.add_argument("--out", default=str(ROOT / "runs/bundled"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--reuse-run", help="a finished run of the same recipe and split whose weights to take")
    ap.add_argument("--ct-list", default=str(CT_LIST),
                    help="CSV of the dataset's CT slices (sha256 column), left out of the refusal fit")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a variant of the default recipe, as `tumorlens train --set` (repeatable; give it its own "
                         "--out, and --reuse-run takes only a run of that variant)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig().with_overrides([*a.set, f"seed={a.seed}", f"threads={a.threads}"])
    ds = load_dataset(a.data, cfg.preprocess)
    split_csv = out / "split.csv"
    if split_csv.exists():
        rows = read_split(split_csv)
    else:
        groups = read_groups_csv(Path(a.data) / "groups-figshare-fold.csv")
        rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                          find_duplicates(ds), "clean", seed=a.seed, groups=groups)
        write_split(rows, split_csv)
    masks, guidance = training_masks(ds, cfg.preprocess, cfg.seg_weight)
    parts = {s: select(ds, rows, s, masks=masks if s == "train" else None) for s in ("train", "val", "test")}
    run = out / "run"
    ckpt = run / CKPT_FILE
    meta = {"data": {"name": Path(a.data).resolve().name, "n_images": len(ds.entries), "skipped": len(ds.skipped)},
            "split": {"strategy": "clean", "groups": "groups-figshare-fold.csv", "seed": a.seed,
                      "manifest": split_manifest(rows), "table": split_table(rows)},
            "mask_guidance": guidance}
    check_existing_run(run, cfg, a.reuse_run)
    if a.reuse_run and (not ckpt.exists() or (run / STATE_FILE).exists()):
        if (Path(a.reuse_run) / STATE_FILE).exists():
            sys.exit(f"{a.reuse_run}: that run has not finished")
        src = load_checkpoint(Path(a.reuse_run) / CKPT_FILE)
        # settings used only after training are today's (the run may predate them)
        src.config = src.config.with_inference_of(cfg)
        diff = recipe_diff(src.config, cfg)
        if diff:
            sys.exit(f"{a.reuse_run}: trained with another recipe than the one asked for ({'; '.join(diff)})")
        if src.meta.get("split", {}).get("manifest") != meta["split"]["manifest"]:
            sys.exit(f"{a.reuse_run}: trained on another split than {split_csv}")
        run.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt, src.model, src.config, {**src.meta, **meta, "reused_from": str(a.reuse_run)},
                        tuple(src.classes))
        print(f"took the weights of {a.reuse_run} (same recipe, same split)", file=sys.stderr)
    if not ckpt.exists() or (run / STATE_FILE).exists():
        train(cfg, parts["train"], parts["val"], run, resume=(run / STATE_FILE).exists(), meta=meta,
              on_epoch=lambda r: print(f"epoch {r['epoch']}: train {r['train_acc']:.4f} val {r['val_acc']:.4f} "
                                       f"({r['seconds']:.1f}s)", file=sys.stderr, flush=True))
    # the shipped file stores float16 weights: round first, then fit and measure everything on them
    ck = load_checkpoint(ckpt)
    shipped = out / "model-fp16.safetensors"
    meta = dict(ck.meta)
    # a run started with `tumorlens train --split out/split.csv` records the strategy as "file"
    meta["split"] = {**meta.get("split", {}), "strategy": "clean", "groups": "groups-figshare-fold.csv",
                     "seed": a.seed}
    save_checkpoint(shipped, ck.model, ck.config, meta, tuple(ck.classes), half=True)
    ckpt = shipped
    # temperature refitted on the rounded weights (and by today's inference: a reused run may predate it)
    calibrate(ckpt, parts["val"].x[:, 0].numpy(), parts["val"].y.numpy())
    # the Kaggle slices that are CT (benchmarks/kaggle_ct.csv, from ct_in_kaggle.py) stay out of the abstention
    # and refusal fits: the feature distance is to describe brain MRI (with them in, it answered 69 of the 74)
    ct = set(read_ct_list(a.ct_list).values())  # by content: a listed slice under any name
    mri = {s: ~listed_in(ds, parts[s], ct) for s in ("train", "val", "test")}
    finalize_checkpoint(ckpt, parts["train"].x[mri["train"], 0].numpy(), parts["val"].x[mri["val"], 0].numpy(),
                        parts["val"].y[mri["val"]].numpy(), y_train=parts["train"].y[mri["train"]].numpy(),
                        excluded={"what": "CT slices of the Kaggle set", "list": Path(a.ct_list).name,
                                  "train": int((~mri["train"]).sum()), "val": int((~mri["val"]).sum())})
    t0 = time.perf_counter()
    ev = evaluate(a.data, rows, out / "eval", model=ckpt)
    # refusal on the real test slices, through the full Predictor path on the files: the MRI slices, and the
    # CT slices of the test part apart
    pr = Predictor(ckpt)
    recs = list(pr.predict_paths([str(Path(a.data) / p) for p in parts["test"].paths]))
    m = dict(ev.metrics)
    for key, keep in (("refused_test", mri["test"]), ("refused_test_ct", ~mri["test"])):
        rs = [r for r, k in zip(recs, keep) if k]
        refused = sum(r.status == "rejected" for r in rs)
        m[key] = {"n": len(rs), "rejected": refused, "rate": refused / max(1, len(rs)),
                  "uncertain": sum(r.status == "uncertain" for r in rs)}
    ck = load_checkpoint(ckpt)
    meta = dict(ck.meta)
    meta["test_metrics"] = m
    save_checkpoint(ckpt, ck.model, ck.config, meta, tuple(ck.classes), half=True)
    summary = {k: m[k] for k in ("accuracy", "accuracy_ci", "balanced_accuracy", "macro_f1")}
    summary.update(macro_auc=m["roc_auc"]["macro"], ece_after=m["calibration"]["ece_after"],
                   selective=m["selective"], refused_test=m["refused_test"],
                   refused_test_ct=m["refused_test_ct"],
                   train_seconds=ck.meta.get("train_seconds"), threads=ck.meta.get("threads"),
                   eval_seconds=round(time.perf_counter() - t0, 1))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if a.install:
        BUNDLED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ckpt, BUNDLED)
        from tumorlens.cli import main as cli

        cli(["model-card", "--out", str(ROOT / "MODEL_CARD.md")])
        print(f"installed {BUNDLED} ({BUNDLED.stat().st_size / 1e6:.1f} MB) and MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
