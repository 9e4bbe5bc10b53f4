"""The `tumorlens` command. The CLI owns the terminal: tables, progress bars and one-line errors."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import DISCLAIMER, TumorlensError


def _table(rows: list[dict], cols: list[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return "(none)"
    cols = cols or list(rows[0])
    cells = [[str(c) for c in cols]] + [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _progress(total: int, desc: str):
    """A tqdm bar on stderr, fed with the number of items done so far; returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty())

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _load(data_dir: str, pre=None):
    from .config import Preprocess
    from .data import load_dataset, scan_dataset

    entries = scan_dataset(data_dir)
    update, close = _progress(len(entries), "decoding")
    try:
        ds = load_dataset(data_dir, pre or Preprocess(), progress=update, entries=entries)
    finally:
        close()
    # skipped files are named, and counted, in load_dataset's warnings (a list here named each a second time)
    return ds


# ------------------------------------------------------------------------------------------ commands
def cmd_audit(a: argparse.Namespace) -> int:
    from .audit import check_thresholds, find_duplicates
    from .fileio import outside_of, prepare_folder

    check_thresholds(a.max_distance, a.min_correlation)  # before the (long) decoding
    outside_of(a.out, "--out", (a.data_dir,))
    prepare_folder(a.out)
    t0 = time.perf_counter()
    ds = _load(a.data_dir)
    res = find_duplicates(ds, max_distance=a.max_distance, min_correlation=a.min_correlation)
    out = Path(a.out)
    csv_path = res.to_csv(out / "duplicates.csv")
    s = res.summary()
    print(DISCLAIMER)
    print(f"Duplicate audit of {a.data_dir}: {len(ds.entries)} images, {s['groups']} groups of copies "
          f"holding {s['images_in_groups']} images")
    print(_table(s["rows"]))
    if s["test_images"]:
        pct = 100 * s["test_with_copy_in_train"] / s["test_images"]
        print(f"Testing images with a copy in Training: {s['test_with_copy_in_train']} of {s['test_images']} "
              f"({pct:.1f}%)")
    print(f"label-conflict groups: {s['label_conflict_groups']}")
    print(f"wrote {csv_path}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _warn_label_conflicts(res: Any, data_dir: str) -> None:
    conflicts = res.summary()["label_conflict_groups"]
    if conflicts:  # the model would learn the same picture under two labels; only `audit` said so
        print(f"warning: {conflicts} group(s) of copies of one image lie in folders of different classes (label "
              f"conflicts); `tumorlens audit {data_dir} --out DIR` lists them in DIR/duplicates.csv",
              file=sys.stderr)


def cmd_split(a: argparse.Namespace) -> int:
    from .audit import find_duplicates
    from .fileio import file_target, prepare_folder
    from .split import check_seed, check_sizes, make_split, read_groups_csv, split_table, write_split

    file_target(a.out, "--out", inputs=(a.groups,), not_inside=(a.data_dir,))  # before the (long) decoding
    prepare_folder(Path(a.out).parent, "--out's parent")
    check_seed(a.seed)
    check_sizes(a.test_size, a.val_size)  # was said after the decoding
    groups = read_groups_csv(a.groups) if a.groups else None
    ds = _load(a.data_dir)
    if groups is not None:
        groups = _matching_groups(groups, a.groups, ds)
    res = find_duplicates(ds)
    rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                      res, a.strategy, a.test_size, a.val_size, a.seed, groups)
    write_split(rows, a.out)
    print(DISCLAIMER)
    _warn_label_conflicts(res, a.data_dir)
    if groups is not None and a.strategy != "clean":
        print(f"warning: --groups keeps groups off both sides of the test split only with --strategy clean; the "
              f"{a.strategy} split uses them for the val part alone", file=sys.stderr)
    print(f"{a.strategy} split of {len(rows)} images (seed {a.seed})")
    empty = [side for side in ("train", "val", "test") if not any(r.split == side for r in rows)]
    if empty:
        print(f"warning: the split's {' and '.join(empty)} part{'s are' if len(empty) > 1 else ' is'} empty",
              file=sys.stderr)
    print(_table(split_table(rows)))
    print(f"wrote {a.out}")
    return 0


def _resolve_config(a: argparse.Namespace):
    import json

    from .config import TrainConfig
    from .fileio import read_user_text

    cfg = TrainConfig()
    if getattr(a, "config", None):
        text = read_user_text(a.config, "config")

        def no_repeats(pairs: list) -> dict:
            # json keeps the last of two equal keys without a word: {"epochs": 1, "epochs": 2} trained 2 epochs
            seen = [k for k, _ in pairs]
            twice = sorted({k for k in seen if seen.count(k) > 1})
            if twice:
                raise TumorlensError(f"the setting(s) {', '.join(twice)} appear more than once; give each once")
            return dict(pairs)

        try:
            cfg = TrainConfig.from_file_dict(json.loads(text, object_pairs_hook=no_repeats))
        except TumorlensError as e:
            raise TumorlensError(f"{a.config}: {e}") from None
        except json.JSONDecodeError as e:
            raise TumorlensError(f"{a.config}: not valid JSON ({e})") from None
    return cfg.with_overrides(a.set or [])


def _matching_groups(groups: dict[str, str], path: str, ds) -> dict[str, str]:
    """`groups` (path -> group) when some of its paths name images of the dataset; a file naming none (another
    dataset, or paths relative to another folder) would silently leave the clean split without its groups."""
    known = set(ds.paths)
    hits = sum(p in known for p in groups)
    if not hits:
        example = next(iter(groups), "")
        raise TumorlensError(f"{path}: none of its {len(groups)} paths is an image of {ds.root} (e.g. {example!r}; "
                             f"paths are relative to the dataset folder, like {ds.paths[0]!r})")
    if hits < len(groups):
        print(f"note: {len(groups) - hits} of the {len(groups)} paths in {path} are not in the dataset "
              f"(unreadable or absent): ignored", file=sys.stderr)
    return groups


def _same_split_as_before(rows: list, saved: Path) -> None:
    """Refuse a --resume whose split differs from the interrupted run's (another --split, another data folder,
    or images added since, which --strategy would split anew): the weights so far were trained on the old train
    part, so images of it could end up scored as test images."""
    from .split import read_split

    key = lambda r: (r.path, r.split, r.sha256)  # noqa: E731
    old, new = {key(r) for r in read_split(saved)}, {key(r) for r in rows}
    if old != new:
        raise TumorlensError(f"{saved.parent}: --resume needs the split of the interrupted run ({saved}); "
                             f"{len(old ^ new)} rows differ (another --split, data folder or dataset content); "
                             f"give the same, or start a new --out")


def cmd_train(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .audit import find_duplicates
    from .config import CLASSES
    from .fileio import outside_of
    from .split import check_seed, make_split, read_groups_csv, read_split, split_table, write_split
    from .train import STATE_FILE, check_run_dir, select, split_manifest, train

    cfg = _resolve_config(a)
    out = Path(a.out)
    outside_of(a.out, "--out", (a.data_dir,))
    check_run_dir(out, a.resume, cfg)
    not_mri = _read_not_mri(a.not_mri) if getattr(a, "not_mri", None) else None
    if not a.split:
        check_seed(a.split_seed, "split-seed")
    if a.split and a.groups:
        raise TumorlensError(f"{a.groups}: --groups shapes a split that train makes (--strategy); with --split "
                             f"{a.split} the split is given, so drop --groups")
    # first, before the warnings and notes of reading the data (stdout holds only the checkpoint's path)
    print(DISCLAIMER, file=sys.stderr)
    ds = _load(a.data_dir, cfg.preprocess)
    if a.split:
        rows = read_split(a.split)
    else:
        groups = _matching_groups(read_groups_csv(a.groups), a.groups, ds) if a.groups else None
        res = find_duplicates(ds)
        rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                          res, a.strategy, seed=a.split_seed, groups=groups)
        _warn_label_conflicts(res, a.data_dir)  # as `split` says it (train --strategy said nothing; an audit)
    out.mkdir(parents=True, exist_ok=True)
    if a.resume and (out / "split.csv").exists():
        _same_split_as_before(rows, out / "split.csv")
    else:
        write_split(rows, out / "split.csv")
    from .masks import training_masks

    masks, guidance = training_masks(ds, cfg.preprocess, cfg.seg_weight)
    parts = {"train": select(ds, rows, "train", masks=masks), "val": select(ds, rows, "val")}
    present = set(parts["train"].y.tolist())
    missing = [c for i, c in enumerate(CLASSES) if i not in present]
    if missing:
        # the model would still name the class among its outputs, and never learn to answer it
        raise TumorlensError(f"{a.split or a.data_dir}: the train part has no {', '.join(missing)} images; every "
                             f"class needs training images (check the class folders or the split)")
    if len(parts["val"].y) < 10:
        print(f"warning: the val part has {len(parts['val'].y)} images: no early stopping, and the temperature, "
              f"abstention threshold and feature-distance refusal are fitted on too few images or not at all",
              file=sys.stderr)
    else:
        in_val = set(parts["val"].y.tolist())
        no_val = [c for i, c in enumerate(CLASSES) if i not in in_val]
        if no_val:  # early stopping and calibration would never see the class
            print(f"warning: the val part has no {', '.join(no_val)} images: early stopping, the temperature and "
                  f"the abstention threshold are chosen without them", file=sys.stderr)
    if cfg.seg_weight > 0:
        print("mask guidance: " + (f"on, masks for {guidance['tumour_masks']} tumour images of the dataset "
                                   f"({guidance['source']}; the training part's are used)"
                                   if guidance["used"] else f"off ({guidance['reason']})"), file=sys.stderr)
    print(f"training on {len(parts['train'].y)} images, validating on {len(parts['val'].y)} "
          f"({Path(a.data_dir).name}); run folder {out}", file=sys.stderr)
    print(_table(split_table(rows)), file=sys.stderr)
    steps = max(1, len(parts["train"].y) // cfg.batch_size)
    bar = tqdm(total=steps, unit="batch", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def on_batch(epoch, b, loss, acc):
        if b == 0:
            bar.reset()
            bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")

    def on_epoch(r):
        val = (f"val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}" if "val_loss" in r
               else "no val part")  # was "val loss nan acc nan" on every line
        bar.write(f"epoch {r['epoch']:3d}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}  {val}  "
                  f"{r['seconds']:.1f}s", file=sys.stderr)

    meta = {"data": {"name": Path(a.data_dir).resolve().name, "n_images": len(ds.entries),
                     "skipped": len(ds.skipped)},
            "split": {"strategy": "file" if a.split else a.strategy, "manifest": split_manifest(rows),
                      "table": split_table(rows)}, "mask_guidance": guidance}
    fit_without = _fit_without(ds, parts, not_mri, Path(a.not_mri).name) if not_mri is not None else None
    try:
        ckpt = train(cfg, parts["train"], parts["val"], out, resume=a.resume, meta=meta,
                     on_batch=on_batch, on_epoch=on_epoch, fit_without=fit_without)
    except TumorlensError:  # e.g. a run that diverged: the one-line error on a line of its own
        bar.close()
        raise
    except KeyboardInterrupt as e:
        bar.close()
        if (out / STATE_FILE).exists():  # said once, with the way on (the generic handler would say it again)
            how = f"terminated ({e.name})" if isinstance(e, Terminated) else "interrupted"
            print(f"{how}; continue with: tumorlens train ... --out {out} --resume", file=sys.stderr)
            # 128 + the signal, as for any command (Ctrl-C: 130; SIGTERM: 143 - it was 130 after the first epoch)
            return 128 + e.signum if isinstance(e, Terminated) else 130
        raise
    bar.close()
    if fit_without is not None:
        left = fit_without["excluded"]
        print(f"abstention and refusal fitted without the {left['train']} train and {left['val']} val images "
              f"listed in {left['list']}", file=sys.stderr)
    print(f"wrote {ckpt}")
    return 0


def _read_not_mri(path: str) -> set[str]:
    """The sha256 values (or, without that column, the dataset-relative paths) of a CSV listing images that
    are not MRI, such as benchmarks/kaggle_ct.csv."""
    import csv
    import io

    from .fileio import read_user_text

    text = read_user_text(path, "the list")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
    except csv.Error as e:
        raise TumorlensError(f"{path}: not a readable CSV ({e})") from None
    header = reader.fieldnames or []
    key = "sha256" if "sha256" in header else "path" if "path" in header else None
    if key is None:
        raise TumorlensError(f"{path}: needs a header row with a sha256 or a path column")
    listed = {r[key].strip() for r in rows if (r.get(key) or "").strip()}
    if not listed:
        raise TumorlensError(f"{path}: lists no images (a header but no {key} values)")
    return listed


def _fit_without(ds: Any, parts: dict[str, Any], listed: set[str], name: str) -> dict[str, Any] | None:
    """`train`'s fit_without for the images of a --not-mri list (by sha256 or path), or None (said why) when
    none of them is in the train or val part or too few images would be left."""
    from .train import listed_in

    keep = {s: ~listed_in(ds, parts[s], listed) for s in ("train", "val")}
    left = {s: int((~k).sum()) for s, k in keep.items()}
    if not any(left.values()):
        print(f"{name}: none of its images is in the train or val part; abstention and refusal fitted on all",
              file=sys.stderr)
        return None
    if min(int(k.sum()) for k in keep.values()) < 10:
        print(f"{name}: fewer than 10 train or val images would be left; abstention and refusal fitted on all",
              file=sys.stderr)
        return None
    return {**keep, "excluded": {"what": "images listed as not MRI", "list": name, **left}}


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .fileio import outside_of
    from .split import read_split

    outside_of(a.out, "--out", (a.data_dir,))
    rows = read_split(a.split)
    if not any(r.split == "test" for r in rows):
        raise TumorlensError(f"{a.split}: the split has no test images (evaluate scores the test part)")
    ev = evaluate(a.data_dir, rows, a.out, model=a.model)
    _print_metrics(ev.metrics)
    mod = ev.metrics.get("model") or {}
    if mod.get("path"):  # without --model it is the bundled one: say which file was scored
        print(f"model: {mod['path']}" + (" (the bundled model)" if not a.model else "")
              + (f", sha256 {str(mod['sha256'])[:12]}..." if mod.get("sha256") else ""))
    print(f"wrote {Path(a.out) / 'report.html'} and the files beside it ({ev.metrics['seconds']:.1f} s)")
    return 0


def _num(v: Any, why: str = "not defined for this test set", spec: str = ".4f") -> str:
    """A metric for the terminal: `v` formatted by `spec`, or "n/a (why)" when it is undefined."""
    from .metrics import number_or_na

    return number_or_na(v, spec, f"n/a ({why})")


def _macro_auc_why(m: dict) -> str:
    """Why macro AUC is undefined: a one-vs-rest ROC curve needs both the class and other classes present."""
    present = [c for c, d in (m.get("report") or {}).items()
               if isinstance(d, dict) and c not in ("macro avg", "weighted avg") and d.get("support")]
    return (f"the test part holds only {present[0]}: ROC needs two classes" if len(present) == 1
            else "no class has a ROC curve")


def _print_metrics(m: dict) -> None:
    """The evaluation summary on stdout: disclaimer, headline numbers (undefined ones as "n/a (why)"), the
    warning about classes absent from the test part, calibration and the per-class table."""
    from .evaluate import absent_message
    from .metrics import format_report

    lo, hi = m.get("accuracy_ci") or (None, None)
    print(DISCLAIMER)
    print(f"every test slice scored from the model's probabilities (refusal and abstention off; what `tumorlens "
          f"predict` answers is the last line)")
    print(f"n = {m['n']}  accuracy {_num(m.get('accuracy'))} (95% CI {_num(lo)}-{_num(hi)})  balanced accuracy "
          f"{_num(m.get('balanced_accuracy'))}  macro-F1 {_num(m.get('macro_f1'))}  macro AUC "
          f"{_num((m.get('roc_auc') or {}).get('macro'), _macro_auc_why(m))}")
    if m.get("classes_absent_from_test"):
        print(f"warning: {absent_message(m)}")
    cal = m.get("calibration", {})
    if cal:
        print(f"ECE {_num(cal.get('ece_before'))} -> {_num(cal.get('ece_after'))} after temperature "
              f"{_num(cal.get('temperature'), spec='.3f')}")
    mr = (m.get("miss_rate") or {}).get("overall") or {}
    if mr.get("n"):
        lo, hi = mr.get("ci") or (float("nan"), float("nan"))
        print(f"tumours called {m['miss_rate'].get('negative_class', 'notumor')}: {mr['count']} of {mr['n']} "
              f"({100 * mr['rate']:.1f}%, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%)")
    sel = m.get("selective") or {}
    at90, at_t = sel.get("at_90") or {}, sel.get("at_threshold") or {}
    if at90.get("coverage") is not None:
        at_threshold = "no abstention threshold stored"
        if at_t.get("coverage") is not None:
            at_threshold = (f"at the model's abstention threshold {at_t['threshold']:.3f}: "
                            f"{100 * at_t['coverage']:.1f}% answered, accuracy {_num(at_t.get('accuracy'))}")
        print(f"selective accuracy {_num(at90.get('accuracy'))} on the {100 * at90['coverage']:.1f}% most "
              f"confident; {at_threshold}")
    print(format_report(m["report"]))
    dep = m.get("deployed") or {}
    if dep.get("n"):
        print(f"as deployed (tumorlens predict on these files, refusal and abstention on): {dep['answered']} "
              f"answered ({100 * dep['coverage']:.1f}%), accuracy {_num(dep.get('accuracy_answered'))}; "
              f"{dep['uncertain']} uncertain; {dep['rejected']} refused ({dep['rejected_by_feature_distance']} by "
              f"the feature checks, {dep['rejected_by_image_checks']} by the image checks)"
              + (f"; {dep['error']} error(s)" if dep.get("error") else "")
              + (f"; tumour slices answered notumor: {dep['tumours_answered_notumor']} of {dep['tumours_answered']}"
                 if dep.get("tumours_answered") else ""))


def cmd_info(a: argparse.Namespace) -> int:
    from .checkpoint import BUNDLED, read_metadata
    from .fileio import file_target

    path = Path(a.model) if a.model else BUNDLED
    if a.split_out:
        file_target(a.split_out, "--split-out", inputs=(path,))  # before anything is printed
    doc = read_metadata(path)
    try:
        return _print_info(a, path, doc)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TumorlensError(f"{path}: checkpoint metadata is damaged or hand-edited "
                             f"({type(e).__name__}: {e})") from None


def _print_info(a: argparse.Namespace, path: Path, doc: dict) -> int:
    import json

    from .checkpoint import file_sha256, manifest_rows, weights_sha256
    from .config import TrainConfig

    cfg = doc["config"]
    # read as Predictor reads it: a setting the checkpoint predates takes the value that run used (STORED_BEFORE)
    try:
        stored = TrainConfig.from_dict(cfg)
    except TumorlensError as e:
        raise TumorlensError(f"{path}: checkpoint does not match this tumorlens ({e}); a newer tumorlens may have "
                             f"written it") from None
    print(DISCLAIMER)
    print(f"checkpoint   {path}")
    print(f"sha256       {file_sha256(path)} (the file: its metadata records training times)")
    print(f"weights      {weights_sha256(path)} (sha256 of the weights alone: equal for equal training)")
    mc = cfg["model"]
    # absent in checkpoints from before the gate
    gate = (" -> fine tumour gate" if mc.get("fine_gate") else " -> tumour gate") if mc.get("gate") else ""
    if mc.get("block_convs"):
        gate = (f" (convs per block {mc['block_convs']}"
                + (", the later ones depthwise-separable" if mc.get("separable") else "") + ")" + gate)
    if mc.get("lstm_in") and mc["head"] == "lstm":
        gate += f" -> 1x1 conv to {mc['lstm_in']} channels"
    print(f"architecture CNN {mc['channels']}{gate} -> {'bi' if mc['bidirectional'] else ''}LSTM({mc['lstm_hidden']})"
          if mc["head"] == "lstm" else f"architecture CNN {mc['channels']}{gate} -> global pooling (ablation)")
    g = doc.get("mask_guidance")
    if mc.get("gate") and g:
        print("guidance     " + (f"gate trained against tumour masks ({g.get('source')}), weight {g.get('seg_weight')}"
                                 if g.get("used") else f"none ({g.get('reason')})"))
    print(f"classes      {', '.join(doc['classes'])}")
    print(f"recipe       {cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}, "
          f"patience {cfg.get('patience')}, weight average "
          f"{'decay ' + str(cfg['ema']) if cfg.get('ema') else 'off'}, "
          f"mixup {'Beta ' + str(cfg['mixup']) if cfg.get('mixup') else 'off'}, "
          + (f"outlier exposure weight {cfg['outliers']}, " if cfg.get("outliers") else "")
          + f"{stored.turn:.0%} turned by any angle, "
          f"grey-level curves {'on ' + format(stored.contrast, '.0%') if stored.contrast else 'off'}, "
          f"skull-stripped {format(stored.strip, '.0%') if stored.strip else 'off'}, "
          + (f"T2-like curve on {stored.sequence:.0%}, " if stored.sequence else "")
          + (f"T2-like tumour rendering on {stored.t2:.0%}, " if stored.t2 else "") + f"seed {cfg.get('seed')}")
    print(f"preprocess   {json.dumps(cfg['preprocess'])}")
    print("inference    " + ("logits averaged over the slice and its left-right mirror" if stored.flip_average
                             else "the slice alone"))
    data = doc.get("data", {})
    split = doc.get("split", {})
    print(f"trained on   {data.get('name', '?')} ({data.get('n_images', '?')} images), split strategy "
          f"{split.get('strategy', '?')}, best epoch {doc.get('best_epoch', '?')}, "
          f"{doc.get('train_seconds', '?')} s on {doc.get('threads', '?')} "
          f"thread{'' if doc.get('threads') == 1 else 's'}")
    if split.get("table"):
        # the stored rows come back with their keys sorted (JSON): shown in `split`'s column order
        order = ("class", "train", "val", "test", "test_fraction")
        print(_table([{**{k: r[k] for k in order if k in r}, **r} for r in split["table"]]))
    tm = doc.get("test_metrics")
    if tm:
        lo, hi = tm["accuracy_ci"]
        print(f"test         accuracy {_num(tm.get('accuracy'))} (95% CI {_num(lo)}-{_num(hi)}), macro-F1 "
              f"{_num(tm.get('macro_f1'))}, macro AUC {_num((tm.get('roc_auc') or {}).get('macro'), _macro_auc_why(tm))}"
              f", n = {tm.get('n', '?')}")
    cal = doc.get("calibration")
    if cal:
        print(f"calibration  temperature {cal['temperature']:.3f} (fitted on {cal['fitted_on']}, n = {cal['n']})")
    ab = doc.get("abstention")
    if ab:
        print(f"abstention   `uncertain` below confidence {ab['threshold']:.3f} (fitted on "
              f"{ab.get('fitted_on', '?')}, n = {ab.get('n', '?')})")
    else:
        print("abstention   none stored: every accepted input is answered")
    ref = doc.get("refusal") or {}
    if ref.get("ood"):
        ex = ref.get("excluded")
        left_out = (f"; {ex.get('train', 0)} + {ex.get('val', 0)} {ex.get('what', 'images')} left out, listed in "
                    f"{ex.get('list', '?')}" if ex else "")
        print(f"refusal      image checks + feature distance above {ref['ood']['threshold']:.4g} (fitted on "
              f"{ref.get('n_train', '?')} train and {ref.get('n_val', '?')} val images{left_out})")
        if ref.get("lookalike"):
            print(f"             + look-alike detector above {ref['lookalike']['threshold']:.4g} (photographs and "
                  f"textures: {ref['lookalike'].get('negatives', {}).get('n', '?')} negative images)")
    else:
        print("refusal      image checks only (no feature distance stored)")
    if a.split_out:
        from .split import SplitRow, write_split

        write_split([SplitRow(*r) for r in manifest_rows(doc, path)], a.split_out)
        print(f"wrote split manifest to {a.split_out}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo
    from .fileio import prepare_folder

    t0 = time.perf_counter()
    prepare_folder(a.out)  # a bad --out is a one-line error naming it, before anything else
    print(f"tumorlens demo: {DISCLAIMER}", file=sys.stderr)
    out = run_demo(Path(a.out), n_per_class=a.n_per_class, epochs=a.epochs,
                   log=lambda msg: print(msg, file=sys.stderr))
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; open {out / 'report' / 'report.html'} "
          f"({DISCLAIMER})")
    return 0


# -------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tumorlens", description=f"Explainable brain-tumour MRI classification. "
                                                              f"{DISCLAIMER}")
    p.add_argument("--version", action="version", version=f"tumorlens {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("audit", help="find duplicate, near-duplicate and mirrored images and label conflicts")
    s.add_argument("data_dir")
    s.add_argument("--out", required=True, help="folder for duplicates.csv")
    s.add_argument("--max-distance", type=int, default=8, help="dHash-256 Hamming distance for near-copies")
    s.add_argument("--min-correlation", type=float, default=0.99, help="correlation for near-copies")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("split", help="write a train/val/test split.csv")
    s.add_argument("data_dir")
    s.add_argument("--strategy", choices=["official", "stratified", "clean"], required=True)
    s.add_argument("--test-size", type=float, default=0.2,
                   help="share of the images in the test part (default 0.2; official: the Testing folders)")
    s.add_argument("--val-size", type=float, default=0.1,
                   help="share of the images in the val part, taken from the training side (default 0.1)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random assignment (default 0)")
    s.add_argument("--groups", help="CSV path,group: images of one group stay on one side (clean)")
    s.add_argument("--out", required=True, help="the split CSV to write (path,label,split,group,sha256)")
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("train", help="train the CNN-LSTM (resumable)")
    s.add_argument("data_dir")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--split", help="split.csv from `tumorlens split`")
    g.add_argument("--strategy", choices=["official", "stratified", "clean"])
    s.add_argument("--groups", help="with --strategy clean: CSV path,group")
    s.add_argument("--split-seed", type=int, default=0, help="with --strategy: seed of the split (default 0)")
    s.add_argument("--config", help="JSON file with training settings")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--not-mri", metavar="CSV",
                   help="images that are not MRI (a CSV with a sha256 or path column, e.g. benchmarks/kaggle_ct.csv):"
                        " still trained on with their labels, but left out of the abstention and refusal fits")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="score a model on the test part of a split; writes report.html",
                       description="score a model on the test part of a split; writes report.html. The metrics "
                                   "score every test slice "
                                   "from the model's calibrated probabilities, with refusal and abstention off "
                                   "(comparable with papers); the 'deployed' figures and predictions.csv's status "
                                   "column say what `tumorlens predict` answers for the same files (ok, uncertain, "
                                   "rejected). Files written into --out replace an earlier report's; other files "
                                   "there are kept.")
    s.add_argument("data_dir")
    s.add_argument("--split", required=True,
                   help="split CSV whose test part is scored (for the bundled model: `tumorlens info --split-out`)")
    s.add_argument("--model", help="checkpoint (default: the bundled model)")
    s.add_argument("--out", required=True, help="report folder (report.html, metrics.json, predictions.csv, PNGs)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("info", help="describe a checkpoint; optionally write its split manifest")
    s.add_argument("--model", help="checkpoint (default: the bundled model)")
    s.add_argument("--split-out", help="write the checkpoint's split.csv here")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="whole pipeline on generated phantoms: data, split, train, evaluate, report")
    s.add_argument("--out", default="tumorlens-demo", help="output folder (default: tumorlens-demo)")
    s.add_argument("--n-per-class", type=int, default=200, help="phantom slices per class (default 200)")
    s.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    s.set_defaults(func=cmd_demo)

    from .cli_explain import add_parsers as _explain_parsers
    from .cli_predict import add_parsers as _predict_parsers

    from .cli_serve import add_parsers as _serve_parsers

    _explain_parsers(sub)
    _predict_parsers(sub)
    _serve_parsers(sub)
    _add_disclaimer_to_help(sub)
    return p


def _add_disclaimer_to_help(sub: Any) -> None:
    """Give every subcommand's --help the research-use disclaimer, as the top-level help has. argparse shows a
    sub-parser's `description`, not the one-line `help` it is listed with, so a sub-parser without a
    description printed no word of what it does nor the disclaimer; the description becomes that help line
    plus the disclaimer. Done here, after every module added its parsers, so none is missed."""
    listed = {a.dest: a.help for a in getattr(sub, "_choices_actions", [])}
    for name, parser in sub.choices.items():
        text = parser.description or listed.get(name) or ""
        if DISCLAIMER not in text:
            parser.description = f"{text.rstrip('. ')}. {DISCLAIMER}" if text else DISCLAIMER


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`kill PID`, a closed terminal), raised where the command is, so that it ends as Ctrl-C
    does: a training saves its last epoch, evaluate removes its stage folder, worker pools are ended. By
    default these signals ended the process at once, leaving a stage folder and, while a dataset was being
    decoded, its worker processes running for good (a helper's audit)."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signum)
        self.signum, self.name = signum, signal.Signals(signum).name


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def guarded(run: Callable[[], int | None]) -> int:
    """Run a command: a TumorlensError, or a file-system error nothing else caught, becomes one `error: ...`
    line and exit code 2, Ctrl-C exit code 130, never a traceback. The CLI and the benchmark scripts share it."""
    try:
        rc = int(run() or 0)
        if sys.stdout is not None:  # here, not at exit, where a full disk was "Exception ignored ... exit 120"
            sys.stdout.flush()
        return rc
    except TumorlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"terminated ({e.name})", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tumorlens ... | head`: the reader left; not an error of ours
        _detach_stdout()
        return 0
    except OSError as e:  # the last net for the file system: an --out that is a file, no permission, disk full
        where = f"{e.filename}: " if e.filename else ""
        if e.filename == STDOUT:  # the interpreter's own flush at exit would fail a second time
            _detach_stdout()
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


STDOUT = "standard output"


class _NamedStdout:
    """sys.stdout while a command runs, whose write errors name it: `tumorlens info > /dev/full` said "No space
    left on device" and not where (a failed write leaves nothing behind to tell by afterwards)."""

    def __init__(self, stream: Any):
        self._stream = stream

    @staticmethod
    def _named(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:  # the reader left: `guarded` ends quietly
            raise
        except OSError as e:
            raise OSError(e.errno, e.strerror, STDOUT) from None

    def write(self, text: str) -> int:
        return self._named(self._stream.write, text)

    def flush(self) -> None:
        self._named(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _detach_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not a.verbose:
        # Pillow warns on stderr about metadata it skips (e.g. "Corrupt EXIF data" from a broken TIFF) next to
        # the one-line error or the answer we give for that file; the warning adds nothing a user can act on
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
        # and its DecompressionBombWarning (a RuntimeWarning, with Pillow's file path and source line) for a
        # large image, which our own pixel limit (data.MAX_PIXELS) decides on with a one-line error
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"PIL(\.|$)")
    import signal
    import threading

    signals = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():  # handlers can be set in the main thread only
        signals = []
    # started with stdout closed (`>&-`): what the command prints had nowhere to go (`info` exited 0 having said
    # nothing; an I/O audit). A server prints only its address there, and may run detached.
    if sys.stdout is None and a.command != "serve":
        print(f"error: standard output is closed: what `tumorlens {a.command}` prints would be lost; redirect it "
              f"to a file", file=sys.stderr)
        return 2
    before = {s: signal.signal(s, _raise_terminated) for s in signals}
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _NamedStdout(stdout)
    try:
        return guarded(lambda: a.func(a))
    finally:
        sys.stdout = stdout
        for s, handler in before.items():  # main() is also called in-process (tests, scripts)
            signal.signal(s, handler)
