"""The main job with no download: phantom data -> audit -> clean split -> train -> evaluate -> report.

Everything lands in one folder; re-running with the same folder resumes the training if it was
interrupted and otherwise refuses to overwrite a finished run.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from .audit import find_duplicates
from .fileio import atomic_write_text
from .config import DISCLAIMER, ModelConfig, TrainConfig, TumorlensError
from .data import load_dataset
from .split import make_split, split_table, write_split
from .train import CKPT_FILE, STATE_FILE, select, split_manifest, train

log = logging.getLogger(__name__)

# small and quick: the phantoms are easier than real scans and the demo must finish in minutes
DEMO_CONFIG = TrainConfig(epochs=30, batch_size=32, lr=3e-3, patience=8,
                          model=ModelConfig(channels=(16, 32, 64, 128), lstm_hidden=64, dense=64))


def _only_phantom_folders(data: Path) -> bool:
    """Whether `data` holds nothing but the Training/ and Testing/ class folders that make_dataset writes (so it
    is ours to remove)."""
    return all(p.is_dir() and p.name in ("Training", "Testing") for p in data.iterdir())


def run_demo(out: Path, n_per_class: int = 200, epochs: int = 30, seed: int = 0,
             log: Callable[[str], None] = log.info) -> Path:
    """Run the whole pipeline into `out`; returns `out`."""
    from .evaluate import evaluate
    from .synthetic import make_dataset, manifest_path, masks_root

    out.mkdir(parents=True, exist_ok=True)
    data = out / "phantoms"
    if data.exists() and not manifest_path(data).is_file() and _only_phantom_folders(data):
        # a run interrupted while generating: the manifest is written last, so without it the set is partial (a
        # rerun trained on 235 images of 2 classes and said "demo finished"; a helper's audit)
        import shutil

        log(f"the phantom dataset in {data} is incomplete (an interrupted run): generating it again")
        shutil.rmtree(data)
        shutil.rmtree(masks_root(data), ignore_errors=True)
    if not data.exists():
        log(f"generating {4 * n_per_class} phantom slices (+ planted duplicates) in {data}")
        make_dataset(data, n_per_class=n_per_class, size=256, seed=seed, split=True,
                     duplicates=max(4, n_per_class // 10))
    cfg = DEMO_CONFIG.with_overrides([f"epochs={epochs}", f"seed={seed}"])
    ds = load_dataset(data, cfg.preprocess)
    audit = find_duplicates(ds)
    s = audit.summary()
    log(f"audit: {s['groups']} groups of copies; {s['test_with_copy_in_train']} Testing images have a copy "
        f"in Training")
    audit.to_csv(out / "audit" / "duplicates.csv")
    rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                      audit, "clean", seed=seed)
    write_split(rows, out / "split.csv")
    run = out / "run"
    resume = (run / STATE_FILE).exists()
    if (run / CKPT_FILE).exists() and not resume:
        log(f"using the finished run in {run}")
        ckpt = run / CKPT_FILE
    else:
        log(f"training a CNN-LSTM for up to {cfg.epochs} epochs" + (" (resuming)" if resume else ""))
        from .masks import training_masks

        masks, guidance = training_masks(ds, cfg.preprocess, cfg.seg_weight)
        meta = {"data": {"name": "phantoms", "n_images": len(ds.entries), "skipped": len(ds.skipped)},
                "split": {"strategy": "clean", "manifest": split_manifest(rows), "table": split_table(rows)},
                "mask_guidance": guidance}
        ckpt = train(cfg, select(ds, rows, "train", masks=masks), select(ds, rows, "val"), run, resume=resume,
                     meta=meta,
                     on_epoch=lambda r: log(f"epoch {r['epoch']}: train acc {r['train_acc']:.3f}, "
                                            f"val acc {r.get('val_acc', float('nan')):.3f}"))
    ev = evaluate(data, rows, out / "report", model=ckpt)
    m = ev.metrics
    log(f"test accuracy {m['accuracy']:.3f} (95% CI {m['accuracy_ci'][0]:.3f}-{m['accuracy_ci'][1]:.3f}), "
        f"macro-F1 {m['macro_f1']:.3f}, macro AUC "
        + (f"{m['roc_auc']['macro']:.3f}" if m["roc_auc"]["macro"] is not None else "n/a (a class is missing)"))
    if m["accuracy"] < 0.5:
        raise TumorlensError(f"demo model scored only {m['accuracy']:.2f}: something is wrong")
    atomic_write_text(out / "summary.json", json.dumps({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                                                         "macro_auc": m["roc_auc"]["macro"],
                                                         "disclaimer": DISCLAIMER}, indent=2) + "\n")
    return out
