"""`tumorlens evaluate`: score a checkpoint on the `test` part of a split and write the full report.

Outputs (all written atomically): metrics.json, classification_report.txt/.json, predictions.csv,
confusion matrices, ROC curves, loss/accuracy curves, reliability diagram, risk-coverage curve, a heatmap
gallery, and one self-contained report.html. The JSON files carry a top-level "disclaimer" key (the research-use
notice) because they are read by people too, not only by programs; predictions.csv stays a plain table.

Two views of one test part. The metrics (accuracy, F1, AUC, calibration, miss rate, selective accuracy) score
every test slice from the model's calibrated probabilities, with refusal and abstention off, so that they are
comparable with papers and between models. `metrics["deployed"]` (and predictions.csv's `status` column) is
what `tumorlens predict` answers for the same files - `Predictor.predict_paths` with the refusal checks and
the abstention threshold on: how many slices are answered, `uncertain` or refused, and how accurate the
answers are.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import StagedFolder, atomic_write_bytes, atomic_write_text
from .config import CLASSES, DISCLAIMER, TumorlensError
from .data import load_dataset
from .predict import Predictor
from .split import SplitRow
from .train import select

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """Predictions of one model on one test set, and their summary."""

    paths: list[str]
    y_true: np.ndarray
    probs: np.ndarray  # calibrated
    probs_raw: np.ndarray  # temperature 1
    metrics: dict[str, Any]
    # what `tumorlens predict` answers for each file (ok / uncertain / rejected / error), when it was run
    statuses: list[str] | None = None

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write metrics.json (with the disclaimer) and predictions.csv into `out_dir`; returns `out_dir`."""
        out = Path(out_dir)
        self.write_metrics(out)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        # the statuses follow the probabilities, so that the columns of earlier reports keep their places
        w.writerow(["path", "true", "pred"] + [f"p_{c}" for c in CLASSES] + (["status"] if self.statuses else []))
        for i, (p, t, pr) in enumerate(zip(self.paths, self.y_true, self.probs)):
            w.writerow([p, CLASSES[t], CLASSES[int(pr.argmax())]] + [f"{v:.6f}" for v in pr]
                       + ([self.statuses[i]] if self.statuses else []))
        atomic_write_text(out / "predictions.csv", buf.getvalue())
        return out

    def write_metrics(self, out: Path) -> Path:
        """metrics.json: the metrics under a leading "disclaimer" key. The key is added only to the file, not to
        `self.metrics`, so code that reads the dict (report tables, model card, benchmarks) sees metrics only."""
        return atomic_write_text(out / "metrics.json",
                                 json.dumps({"disclaimer": DISCLAIMER, **self.metrics}, indent=2) + "\n")


def score(predictor: Predictor, x: np.ndarray, y: np.ndarray, paths: list[str]) -> Evaluation:
    """Run the predictor on preprocessed inputs and summarise (accuracy with CI, F1, AUC, ECE ...).

    Classes of the model with no test image are listed under "classes_absent_from_test" and logged as a
    warning: their all-zero rows still count in the macro averages (scikit-learn's definition, kept so the
    numbers stay comparable), which drags macro-F1 down for a reason that says nothing about the model."""
    from .metrics import accuracy_at_coverage, ece, brier, summarize, softmax

    y = np.asarray(y)  # a list compared with `== i` is never equal: every class looked absent
    if not len(x) == len(y) == len(paths):  # predictions.csv zipped them, silently dropping rows (an audit)
        raise TumorlensError(f"score needs one label and one path per image, got {len(x)} images, {len(y)} labels "
                             f"and {len(paths)} paths")
    logits = predictor.logits(x)
    probs = softmax(logits, predictor.temperature)
    raw = softmax(logits, 1.0)
    m = summarize(y, probs, list(predictor.classes))
    m["classes_absent_from_test"] = [c for i, c in enumerate(predictor.classes) if not np.any(y == i)]
    if m["classes_absent_from_test"]:
        log.warning("%s", absent_message(m))
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    m["calibration"] = {"temperature": predictor.temperature, "ece_before": ece(raw, y), "ece_after": ece(probs, y),
                        "brier_before": brier(raw, y), "brier_after": brier(probs, y)}
    m["inference"] = {"flip_average": bool(predictor.flip_average)}
    m["selective"] = {"at_90": accuracy_at_coverage(conf, correct, 0.9),
                      "at_threshold": {"threshold": predictor.threshold,
                                       "n_answered": int((conf >= predictor.threshold).sum()),
                                       "coverage": float((conf >= predictor.threshold).mean()),
                                       "accuracy": float(correct[conf >= predictor.threshold].mean())
                                       if (conf >= predictor.threshold).any() else None}}
    return Evaluation(paths, y, probs, raw, m)


def evaluate(data_dir: str | os.PathLike, rows: list[SplitRow], out_dir: str | os.PathLike,
             model: str | os.PathLike | None = None, side: str = "test", progress=None) -> Evaluation:
    """Evaluate a checkpoint on one side of a split and write every report file into `out_dir`.

    The files land together at the end (`fileio.StagedFolder`): an interrupted run leaves `out_dir` as it was,
    and a rerun into the same folder replaces every file of the earlier run, so the folder never mixes two."""
    t0 = time.perf_counter()
    stage = StagedFolder(out_dir, OUTPUTS)  # before any work: an --out that cannot be a folder fails at once
    with stage:
        ev = _evaluate(data_dir, rows, stage.stage, model, side, progress, t0)
        stage.publish()
    return ev


# every file `evaluate` writes; metrics.json last, so that its presence marks a complete run
OUTPUTS = ["predictions.csv", "classification_report.txt", "classification_report.json", "confusion_matrix.png",
           "confusion_matrix_normalized.png", "roc.png", "history.png", "reliability.png", "risk_coverage.png",
           "gradcam_gallery.png", "report.html", "metrics.json"]


def _evaluate(data_dir: str | os.PathLike, rows: list[SplitRow], out: Path, model: str | os.PathLike | None,
              side: str, progress, t0: float) -> Evaluation:
    predictor = Predictor(model)
    check_classes(predictor, model)  # before the dataset is decoded
    ds = load_dataset(data_dir, predictor.pre, progress=progress)
    part = select(ds, rows, side)
    if len(part.y) == 0:
        raise TumorlensError(f"the split has no {side} images")
    x = part.x[:, 0].numpy()
    ev = score(predictor, x, part.y.numpy(), part.paths)
    statuses, ev.metrics["deployed"] = deployed(predictor, data_dir, part.paths, ev.y_true)
    ev = replace(ev, statuses=statuses)
    ev.metrics["data"] = {"dir": Path(data_dir).resolve().name, "side": side, "n": len(part.y)}
    idx = ds.index()
    ev.metrics["overlap_with_training"] = training_overlap(predictor.ckpt.meta,
                                                           [ds.sha256[idx[p]] for p in part.paths])
    ev.metrics["model"] = {"path": str(predictor.ckpt.path), "sha256": predictor.ckpt.sha256}
    ev.save(out)
    write_report(ev, predictor, out, x)
    ev.metrics["seconds"] = round(time.perf_counter() - t0, 2)
    ev.write_metrics(out)
    return ev


def check_classes(predictor: Predictor, model: Any) -> None:
    """The model must name the dataset's classes in their order (config.CLASSES), which the labels, the report's
    columns and predictions.csv follow: a model whose class names came in another order had its columns read
    in the dataset's order and was scored wrongly without a word (an audit)."""
    names = tuple(predictor.classes)
    if names != tuple(CLASSES):
        raise TumorlensError(f"{model or 'the model'}: its classes ({', '.join(names)}) are not the dataset's "
                             f"({', '.join(CLASSES)}, in this order); evaluate scores models of these classes")


def deployed(predictor: Predictor, data_dir: str | os.PathLike, paths: list[str],
             y: np.ndarray) -> tuple[list[str], dict[str, Any]]:
    """What `tumorlens predict` answers for the test files: each file's status, and a summary - answered
    (`ok`), `uncertain`, refused (by the image checks or by the feature checks: the feature distance or the
    look-alike detector, counted as `rejected_by_feature_distance`), errors; the accuracy of the
    answers and the tumours they call `notumor`. The metrics of `score` leave refusal and abstention out; this
    is the same model through the one path that users meet (a helper's audit found the difference unstated:
    92.3% of the test slices above the threshold, but 91.1% answered once 17 of them were refused)."""
    from .metrics import NEGATIVE_CLASS
    from .predict import DISTANCE_REASON

    root = Path(data_dir)
    files = [str(root / p) for p in paths]
    found: dict[str, Any] = {}
    for rec in predictor.predict_paths(files, named=files):
        found.setdefault(rec.path, rec)  # a dataset image is one 2-D frame (multi-page TIFFs: the first page)
    recs = [found.get(f) for f in files]
    statuses = [r.status if r is not None else "error" for r in recs]
    names = list(predictor.classes)
    ok = [i for i, s in enumerate(statuses) if s == "ok"]
    right = sum(1 for i in ok if recs[i].label == names[int(y[i])])
    rejected = [recs[i] for i, s in enumerate(statuses) if s == "rejected"]
    by_distance = sum(1 for r in rejected if (r.reason or "").startswith(DISTANCE_REASON))
    neg = NEGATIVE_CLASS if NEGATIVE_CLASS in names else None
    tumours_ok = [i for i in ok if neg is not None and names[int(y[i])] != neg]
    summary = {"n": len(files), "answered": len(ok), "uncertain": statuses.count("uncertain"),
               "rejected": len(rejected), "rejected_by_feature_distance": by_distance,
               "rejected_by_image_checks": len(rejected) - by_distance, "error": statuses.count("error"),
               "coverage": len(ok) / len(files) if files else None,  # None, not NaN: metrics.json stays JSON
               "accuracy_answered": right / len(ok) if ok else None,
               "tumours_answered": len(tumours_ok),
               "tumours_answered_notumor": sum(1 for i in tumours_ok if recs[i].label == neg)}
    for r in recs:
        if r is not None and r.status == "error":
            log.warning("%s", r.reason)
    return statuses, summary


def training_overlap(meta: dict[str, Any], sha256: list[str]) -> dict[str, int] | None:
    """{"n": k, "of": n}: how many of the n scored images (by file content) the checkpoint's split manifest puts
    in its train or val part; None for a checkpoint without a manifest. Scores on images a model was trained
    or calibrated on are inflated (the bundled model on its own training images reads 0.875), so k > 0 is
    logged as a warning and shown in the report; it is not refused, since scoring on a leaky official split
    for comparison with papers is done on purpose."""
    rows = (meta.get("split") or {}).get("manifest")
    if not rows:
        log.warning("the model has no split manifest: cannot check whether the test images were in its training data")
        return None
    seen = {r[4] for r in rows if len(r) > 4 and r[2] in ("train", "val") and r[4]}
    k = sum(s in seen for s in sha256)
    if k:
        log.warning("%s", overlap_message(k, len(sha256)))
    return {"n": k, "of": len(sha256)}


def overlap_message(k: int, n: int) -> str:
    """The warning for k of n test images that the model saw in training or validation."""
    return f"{k} of {n} test images were in this model's training/validation data: the scores are inflated"


def absent_message(m: dict[str, Any]) -> str:
    """The warning for classes with no test image (`m["classes_absent_from_test"]`, non-empty), shared by the
    log, report.html and the terminal summary so all three say the same: the macro averages count each such
    class as 0, so read balanced accuracy and the per-class rows; and why macro AUC is missing when it is."""
    absent = m["classes_absent_from_test"]
    one = len(absent) == 1
    f1, ba = m.get("macro_f1"), m.get("balanced_accuracy")
    nums = f" (macro-F1 {f1:.3f}, balanced accuracy {ba:.3f})" if f1 is not None and ba is not None else ""
    auc = ("; with a single class in the test part no ROC curve exists, so macro AUC is n/a"
           if (m.get("roc_auc") or {}).get("macro") is None else "")
    return (f"no test images of {', '.join(absent)} (support 0): the macro averages (precision, recall, F1) count "
            f"{'that class' if one else 'those classes'} as 0{nums}; read balanced accuracy and the per-class rows "
            f"instead{auc}")


def write_report(ev: Evaluation, predictor: Predictor, out: Path, x: np.ndarray | None = None) -> Path:
    """All figures, the text/JSON classification report and report.html."""
    from . import plots
    from .metrics import format_report
    from .report import build_report, table_html

    names = list(predictor.classes)
    m = ev.metrics
    atomic_write_text(out / "classification_report.txt", f"{DISCLAIMER}\n\n" + format_report(m["report"]) + "\n")
    atomic_write_text(out / "classification_report.json",
                      json.dumps({"disclaimer": DISCLAIMER, **m["report"]}, indent=2) + "\n")
    figs = [("Confusion matrix (counts)", plots.plot_confusion(np.array(m["confusion_matrix"]), names,
                                                               out / "confusion_matrix.png")),
            ("Confusion matrix (row-normalised)", plots.plot_confusion(
                np.array(m["confusion_matrix"]), names, out / "confusion_matrix_normalized.png", normalize=True)),
            ("One-vs-rest ROC curves", plots.plot_roc(ev.y_true, ev.probs, names, out / "roc.png"))]
    history = predictor.ckpt.meta.get("history") or []
    if history:
        figs.append(("Training and validation curves", plots.plot_history(history, out / "history.png")))
    figs.append(("Reliability before/after temperature scaling",
                 plots.plot_reliability(ev.probs_raw, ev.y_true, out / "reliability.png", probs_after=ev.probs)))
    conf = ev.probs.max(1)
    figs.append(("Risk-coverage", plots.plot_risk_coverage(conf, ev.probs.argmax(1) == ev.y_true,
                                                          out / "risk_coverage.png")))
    if x is not None:
        method = predictor.heatmap_method
        # the file keeps its old name for scripts that look for it; the caption names the method really used
        figs.append((f"Heatmap gallery (method: {method}, the default for this model; see explain.py): per true "
                     "class, two correct and two misclassified test slices (network input, heatmap of the "
                     "predicted class)",
                     gallery_png(predictor, x, ev.y_true, ev.probs, out / "gradcam_gallery.png", method=method)))
    cal = m["calibration"]
    tables = [table_html([{"": "before", "ECE (15 bins)": cal["ece_before"], "Brier": cal["brier_before"]},
                          {"": f"after (T = {cal['temperature']:.3f})", "ECE (15 bins)": cal["ece_after"],
                           "Brier": cal["brier_after"]}], caption="Calibration"),
              table_html([{"answered": "the 90% most confident", **{k: v for k, v in m["selective"]["at_90"].items()
                                                                      if k != "target_coverage"}},
                          {"answered": "at the model's abstention threshold", **m["selective"]["at_threshold"]}],
                         caption="Selective prediction (every test slice, refusal off)")]
    dep = m.get("deployed")
    if dep:
        tables.append(table_html(
            [["answered (ok)", dep["answered"]], ["uncertain (below the abstention threshold)", dep["uncertain"]],
             ["refused by the feature checks (distance or look-alike)", dep["rejected_by_feature_distance"]],
             ["refused by the image checks", dep["rejected_by_image_checks"]], ["errors", dep["error"]],
             ["share answered", dep["coverage"]], ["accuracy of the answers", dep["accuracy_answered"]],
             ["tumour slices answered", dep["tumours_answered"]],
             ["of them called notumor", dep["tumours_answered_notumor"]]], header=["", "value"],
            caption="As deployed: what `tumorlens predict` answers for the same files, with the refusal checks "
                    "and the abstention threshold on (the figures above score every slice with both off)"))
    ck = predictor.ckpt
    subtitle = (f"model {Path(str(ck.path)).name} (sha256 {ck.sha256[:12]}), data {m['data']['dir']}, "
                f"{m['data']['side']} part, n = {m['data']['n']}"
                + ("; each slice is scored as the mean of its own and its left-right mirror's logits"
                   if predictor.flip_average else ""))
    ov = m.get("overlap_with_training")
    warnings = [overlap_message(ov["n"], ov["of"])] if ov and ov["n"] else []
    if m.get("classes_absent_from_test"):
        warnings.append(absent_message(m))
    return build_report(out / "report.html", "tumorlens evaluation report", metrics=m, tables_html=tables,
                        figures=figs, subtitle=subtitle, warnings=warnings)


def gallery_png(predictor: Predictor, x: np.ndarray, y: np.ndarray, probs: np.ndarray, path: Path,
                per_kind: int = 2, seed: int = 0, method: str | None = None) -> Path:
    """A grid of heatmap overlays: one row per true class, `per_kind` correct then misclassified.

    `method` is an explain.py method (None: the predictor's, `Predictor.heatmap_method`); it is written above
    the grid, since the PNG is often looked at without the report that captions it."""
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .explain import explain_batch

    method = method or predictor.heatmap_method
    rng = np.random.default_rng(seed)
    pred = probs.argmax(1)
    names = list(predictor.classes)
    picks: list[list[int | None]] = []
    for c in range(len(names)):
        row: list[int | None] = []
        for ok in (True, False):
            idx = np.flatnonzero((y == c) & ((pred == c) == ok))
            chosen = list(rng.choice(idx, min(per_kind, len(idx)), replace=False)) if len(idx) else []
            row += chosen + [None] * (per_kind - len(chosen))
        picks.append(row)
    flat = [i for row in picks for i in row if i is not None]
    cams = {}
    if flat:
        maps, _ = explain_batch(predictor.model, torch.from_numpy(x[flat]).unsqueeze(1),
                                [int(pred[i]) for i in flat], method=method)
        cams = dict(zip(flat, maps))
    ncol = 2 * per_kind
    fig = Figure(figsize=(1.9 * ncol, 2.05 * len(names) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    for r, row in enumerate(picks):
        for col, i in enumerate(row):
            ax = fig.add_subplot(len(names), ncol, r * ncol + col + 1)
            ax.set_axis_off()
            if i is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, color="0.5")
                continue
            ax.imshow(x[i], cmap="gray", vmin=0, vmax=1)
            ax.imshow(cams[i], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ok = pred[i] == y[i]
            ax.set_title(f"{names[y[i]]} -> {names[pred[i]]}\np = {probs[i, pred[i]]:.2f}", fontsize=7,
                         color="black" if ok else "crimson")
    fig.suptitle(f"heatmap method: {method}", fontsize=9)
    fig.text(0.5, 0.005, DISCLAIMER, ha="center", va="bottom", fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
