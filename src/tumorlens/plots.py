"""Evaluation figures as PNG files.

Uses matplotlib's object-oriented API with the Agg canvas directly (`Figure` + `FigureCanvasAgg`), never
`pyplot`, so importing this module neither picks a GUI backend nor touches global figure state, and it works
on headless servers and in worker threads. Every function writes its PNG atomically (temporary file in the
same folder, then `os.replace`), so a crash never leaves a half-written image behind, and returns the path.
Every figure carries the research-use disclaimer as a footer.
"""
from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import metrics as M
from .config import DISCLAIMER, TumorlensError
from .fileio import atomic_write_bytes

DPI = 110
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Add the disclaimer footer, lay out, render to PNG and write it atomically; returns the path."""
    fig.text(0.5, 0.012, DISCLAIMER, ha="center", va="bottom", fontsize=7, color="0.35")
    try:
        fig.tight_layout(rect=(0, 0.045, 1, 1))
    except Exception:  # noqa: BLE001 - layout is cosmetic; a failure must not lose the figure
        pass
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(path, buf.getvalue())


def png_to_data_uri(path: str | os.PathLike) -> str:
    """`data:image/png;base64,...` for embedding a PNG in HTML; refuses files that are not PNGs."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise TumorlensError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------------------------------------ figures
def plot_confusion(cm: Any, class_names: Sequence[str], path: str | os.PathLike, normalize: bool = False,
                   title: str | None = None) -> Path:
    """Confusion matrix heat map (rows = true class, columns = predicted), every cell annotated.

    normalize=True colours by row fraction (recall on the diagonal) and prints fraction and count.
    """
    counts = np.asarray(cm, dtype=np.float64)
    k = len(class_names)
    if counts.shape != (k, k):
        raise TumorlensError(f"confusion matrix of shape {counts.shape} for {k} class names")
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    side = 1.6 + 1.05 * k
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), [str(c) for c in class_names], rotation=35, ha="right")
    ax.set_yticks(range(k), [str(c) for c in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    hi = (1 if normalize else max(1.0, shown.max())) / 2
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}\n({int(counts[i, j])})" if normalize else f"{int(counts[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if shown[i, j] > hi else "black")
    return _save(fig, path)


def plot_roc(y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """One-vs-rest ROC curve per class plus micro- and macro-average, AUCs in the legend.

    The legend's macro AUC is `metrics.roc_auc_ovr`'s (mean of per-class AUCs); the macro curve drawn is
    the mean of the per-class TPRs interpolated on a common FPR grid. Classes absent from y_true are
    listed as such and not drawn.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = M._labels(y_true, p.shape[1] if p.ndim == 2 else None)
    names = [str(c) for c in class_names]
    aucs = M.roc_auc_ovr(y, p, names)
    onehot = np.eye(p.shape[1], dtype=bool)[y]
    fig = _new_figure(6.4, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1, label="chance")
    curves = []
    for i, name in enumerate(names):
        if not math.isfinite(aucs[name]):
            ax.plot([], [], ls="none", label=f"{name} (absent: no curve)")
            continue
        fpr, tpr, _ = M.roc_curve(onehot[:, i], p[:, i])
        curves.append((fpr, tpr))
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUC {aucs[name]:.3f})")
    fpr, tpr, _ = M.roc_curve(onehot.ravel(), p.ravel())
    ax.plot(fpr, tpr, lw=2, ls="--", color="black", label=f"micro-average (AUC {aucs['micro']:.3f})")
    if curves:
        grid = np.unique(np.concatenate([c[0] for c in curves]))
        mean_tpr = np.mean([np.interp(grid, f, t) for f, t in curves], axis=0)
        ax.plot(grid, mean_tpr, lw=2, ls="-.", color="0.35", label=f"macro-average (AUC {aucs['macro']:.3f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC curves, one-vs-rest")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        v = row.get(key)
        if v is None or not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
            continue
        xs.append(float(row.get("epoch", i + 1)))
        ys.append(float(v))
    return xs, ys


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Training curves: loss (left) and accuracy (right) per epoch, train vs validation.

    `history` rows carry `epoch`, `train_loss`, `val_loss`, `train_acc`, `val_acc`; missing or None
    values are skipped. The epoch with the lowest validation loss is marked.
    """
    if not history:
        raise TumorlensError("plot_history needs at least one epoch")
    fig = _new_figure(10, 4.2)
    for col, (metric, label) in enumerate((("loss", "loss"), ("acc", "accuracy"))):
        ax = fig.add_subplot(1, 2, col + 1)
        for split, style in (("train", "-"), ("val", "--")):
            xs, ys = _series(history, f"{split}_{metric}")
            if xs:
                ax.plot(xs, ys, style, marker="o", ms=3, label="train" if split == "train" else "validation")
        vx, vy = _series(history, "val_loss")
        if vx:
            best = vx[int(np.argmin(vy))]
            ax.axvline(best, color="0.6", lw=1, ls=":", label=f"best val loss (epoch {best:g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"Training {label}")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)


def _reliability_panel(ax: Any, probs: Any, y_true: Any, title: str, n_bins: int) -> None:
    b = M.reliability_bins(probs, y_true, n_bins)
    e = M.ece(probs, y_true, n_bins)
    width = b["upper"] - b["lower"]
    nz = b["count"] > 0
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1, label="perfect calibration")
    ax.bar(b["lower"][nz], b["accuracy"][nz], width=width[nz], align="edge", color="tab:blue", alpha=0.75,
           edgecolor="white", label="accuracy")
    ax.bar(b["lower"][nz], b["confidence"][nz] - b["accuracy"][nz], bottom=b["accuracy"][nz],
           width=width[nz], align="edge", color="tab:red", alpha=0.3, hatch="//", edgecolor="tab:red",
           label="gap to confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE = {e:.3f} ({n_bins} bins, n = {int(b['count'].sum())})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)


def plot_reliability(probs: Any, y_true: Any, path: str | os.PathLike, probs_after: Any = None,
                     n_bins: int = 15) -> Path:
    """Reliability diagram; with `probs_after`, side by side before / after temperature scaling."""
    panels = [(probs, "Before temperature scaling" if probs_after is not None else "Reliability")]
    if probs_after is not None:
        panels.append((probs_after, "After temperature scaling"))
    fig = _new_figure(5.2 * len(panels), 5.0)
    for i, (p, title) in enumerate(panels):
        _reliability_panel(fig.add_subplot(1, len(panels), i + 1), p, y_true, title, n_bins)
    return _save(fig, path)


def plot_risk_coverage(confidence: Any, correct: Any, path: str | os.PathLike) -> Path:
    """Accuracy on the answered cases versus coverage when the least confident cases are deferred."""
    cov, acc = M.risk_coverage(confidence, correct)
    if cov.size == 0:
        raise TumorlensError("plot_risk_coverage needs at least one sample")
    fig = _new_figure(6.2, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.r_[0.0, cov], np.r_[acc[0], acc], drawstyle="steps-pre", lw=1.8, label="selective accuracy")
    ax.axhline(acc[-1], color="0.5", ls=":", lw=1, label=f"accuracy at full coverage ({acc[-1]:.3f})")
    for target in (0.9, 0.8):
        r = M.accuracy_at_coverage(confidence, correct, target)
        if math.isfinite(r["accuracy"]):
            ax.plot([r["coverage"]], [r["accuracy"]], "o", ms=5,
                    label=f"{r['coverage']:.0%} answered: {r['accuracy']:.3f}")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(max(0.0, min(acc.min(), acc[-1]) - 0.05), 1.005)
    ax.set_xlabel("coverage (fraction of cases answered)")
    ax.set_ylabel("accuracy on answered cases")
    ax.set_title("Risk-coverage: deferring the least confident cases")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


__all__ = ["plot_confusion", "plot_roc", "plot_history", "plot_reliability", "plot_risk_coverage",
           "png_to_data_uri", "atomic_write_bytes"]
