"""Evaluation metrics for a K-class classifier, in plain numpy.

Inputs follow one convention throughout: `y_true` and `y_pred` are integer class indices (N,), `probs` is an
(N, K) array of class probabilities whose column k belongs to `class_names[k]`. Conventions copy
scikit-learn's where it has one (classification report, ROC curve, balanced accuracy), so numbers can be
checked against it, but nothing here imports it. SciPy is not needed either: the two places one would use it
(a bounded 1-D minimiser and the chi-square / binomial tails of McNemar's test) are a few lines of `math`.

`summarize` bundles everything an evaluation report needs into a JSON-serialisable dict.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from .config import CLASSES, TumorlensError

log = logging.getLogger(__name__)

NEGATIVE_CLASS = "notumor"


# ------------------------------------------------------------------------------------------ helpers
def _labels(y: Any, k: int | None = None, name: str = "y_true") -> np.ndarray:
    """Validate a vector of class indices (optionally in [0, k)) and return it as int64."""
    a = np.asarray(y)
    if a.ndim != 1:
        raise TumorlensError(f"{name} must be a 1-D array of class indices, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iufb":  # class names instead of indices: numpy's own TypeError (an audit)
        raise TumorlensError(f"{name} must hold integer class indices, got {a.dtype} values such as {a[0]!r}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise TumorlensError(f"{name} must hold integer class indices")
    a = a.astype(np.int64)
    if k is not None and a.size and (a.min() < 0 or a.max() >= k):
        raise TumorlensError(f"{name} holds class index {int(a.min()) if a.min() < 0 else int(a.max())}, "
                             f"outside 0..{k - 1}")
    return a


def _probs(probs: Any, y_true: Any = None, check_simplex: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate an (N, K) probability matrix (rows in [0, 1] summing to 1) and matching labels."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise TumorlensError(f"probs must be an (N, K) array with K >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise TumorlensError("probs contains NaN or infinite values")
    if check_simplex and p.size:
        if p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(p.sum(axis=1) - 1).max() > 1e-3:
            raise TumorlensError("probs rows must be probabilities summing to 1 (pass logits through softmax)")
    y = None
    if y_true is not None:
        y = _labels(y_true, p.shape[1])
        if len(y) != len(p):
            raise TumorlensError(f"y_true has {len(y)} entries but probs has {len(p)} rows")
    return p, y


def _div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """Elementwise num/den with 0/0 (and x/0) -> 0.0: scikit-learn's `zero_division=0.0` convention."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats to plain JSON values (NaN/inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# ------------------------------------------------------------------------ confusion matrix & report
def confusion_matrix(y_true: Any, y_pred: Any, k: int) -> np.ndarray:
    """K x K count matrix, rows = true class, columns = predicted class (scikit-learn's layout)."""
    yt, yp = _labels(y_true, k), _labels(y_pred, k, "y_pred")
    if len(yt) != len(yp):
        raise TumorlensError(f"y_true has {len(yt)} entries but y_pred has {len(yp)}")
    return np.bincount(yt * k + yp, minlength=k * k).reshape(k, k).astype(np.int64)


def classification_report(y_true: Any, y_pred: Any, class_names: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support, with `accuracy`, `macro avg` and `weighted avg`.

    Same shape and conventions as scikit-learn's `classification_report(..., labels=range(K),
    output_dict=True, zero_division=0.0)`: per-class entries are dicts with keys `precision`, `recall`,
    `f1-score`, `support`; `accuracy` is a float; the two averages carry `support` = N. Every class in
    `class_names` is reported, including classes absent from both y_true and y_pred (all zeros), and such
    classes count in the macro average exactly as in scikit-learn when `labels` is given.
    precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); any 0/0 is 0.0.
    """
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _div(tp, cm.sum(axis=0))
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    n = int(support.sum())
    out: dict[str, Any] = {}
    for i, name in enumerate(class_names):
        out[str(name)] = {"precision": float(precision[i]), "recall": float(recall[i]),
                          "f1-score": float(f1[i]), "support": int(support[i])}
    out["accuracy"] = float(_div(tp.sum(), n))
    out["macro avg"] = {"precision": float(precision.mean()), "recall": float(recall.mean()),
                        "f1-score": float(f1.mean()), "support": n}
    w = _div(support, n)
    out["weighted avg"] = {"precision": float((precision * w).sum()), "recall": float((recall * w).sum()),
                           "f1-score": float((f1 * w).sum()), "support": n}
    return out


def format_report(report: dict[str, Any], digits: int = 3) -> str:
    """Render a `classification_report` dict as a fixed-width text table (scikit-learn's layout).

    Non-dict entries other than `accuracy` (such as the "disclaimer" of classification_report.json) are
    skipped, and a value stored as null (JSON's NaN) prints as n/a, so a report read back from disk renders."""
    rows = [k for k, v in report.items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")]
    avgs = [k for k in ("macro avg", "weighted avg") if k in report]
    width = max([len(r) for r in rows + avgs] + [len("weighted avg"), digits])
    head = f"{'':>{width}} " + " ".join(f"{h:>9}" for h in ("precision", "recall", "f1-score", "support"))
    lines = [head, ""]

    def row(name: str, d: dict[str, Any]) -> str:
        vals = " ".join(_cell(d.get(m), digits) for m in ("precision", "recall", "f1-score"))
        return f"{name:>{width}} {vals} {int(d['support']):>9}"

    lines += [row(r, report[r]) for r in rows]
    lines.append("")
    if "accuracy" in report:
        n = report.get("macro avg", {}).get("support", sum(int(report[r]["support"]) for r in rows))
        lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {_cell(report['accuracy'], digits)} {int(n):>9}")
    lines += [row(a, report[a]) for a in avgs]
    return "\n".join(lines) + "\n"


def number_or_na(v: Any, spec: str, na: str = "n/a") -> str:
    """`v` formatted by `spec`, or `na` when it is None or not finite: an undefined metric (stored as null in
    metrics.json) is shown as such, never crashes a summary."""
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else na


def _cell(v: Any, digits: int) -> str:
    """One 9-wide number cell of `format_report`; None or NaN (undefined) shows as n/a."""
    return f"{number_or_na(v, f'.{digits}f'):>9}"


# ------------------------------------------------------------------------------- accuracy & its CI
def wilson_ci(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % for z = 1.96).

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps near-nominal coverage for small n
    and proportions near 0 or 1, which is where per-class test sets of a few dozen scans live.
    Formula: Wilson (1927), JASA 22:209; see also Brown, Cai & DasGupta (2001), Stat. Sci. 16:101, eq. 4:
      centre = (p + z^2/2n) / (1 + z^2/n),  half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2).
    n = 0 gives the uninformative (0.0, 1.0).
    """
    if n < 0 or successes < 0 or successes > n:
        raise TumorlensError(f"wilson_ci needs 0 <= successes <= n, got {successes}/{n}")
    if not 0 < z < float("inf"):  # a negative z put the lower bound above the upper (an audit)
        raise TumorlensError(f"wilson_ci needs a positive z, got {z}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_ci(y_true: Any, y_pred: Any, z: float = 1.96) -> tuple[float, float, float]:
    """(accuracy, lower, upper): top-1 accuracy with its Wilson score interval (see `wilson_ci`)."""
    yt, yp = _labels(y_true), _labels(y_pred, name="y_pred")
    if len(yt) != len(yp):
        raise TumorlensError(f"y_true has {len(yt)} entries but y_pred has {len(yp)}")
    correct = int((yt == yp).sum())
    lo, hi = wilson_ci(correct, len(yt), z)
    # no cases: not defined (NaN, as balanced_accuracy says it), not 0.0
    return (correct / len(yt) if len(yt) else float("nan")), lo, hi


def balanced_accuracy(y_true: Any, y_pred: Any, k: int | None = None) -> float:
    """Mean per-class recall over the classes present in y_true (scikit-learn's balanced_accuracy_score).

    Robust to class imbalance: a model that always says the majority class scores 1/K, not the majority
    share. Classes with no true samples are left out (their recall is undefined). Brodersen et al. (2010),
    "The balanced accuracy and its posterior distribution", ICPR.
    """
    yt, yp = _labels(y_true), _labels(y_pred, name="y_pred")
    if k is None:
        k = int(max(yt.max(initial=-1), yp.max(initial=-1))) + 1
    cm = confusion_matrix(yt, yp, max(k, 1))
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


# ---------------------------------------------------------------------------------------------- ROC
def roc_curve(y_binary: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a binary problem: (fpr, tpr, thresholds), thresholds decreasing.

    Same construction as scikit-learn's `roc_curve(..., drop_intermediate=False)`: samples are sorted by
    score and one point is emitted per *distinct* score, so tied scores form a single diagonal step (the
    trapezoid under it gives ties half credit, matching the Mann-Whitney AUC). A first point (0, 0) with
    threshold +inf is prepended. A sample counts as positive-predicted at threshold t when score >= t.
    If y_binary has no positives (or no negatives) tpr (or fpr) is all NaN, as in scikit-learn.
    Reference: Fawcett (2006), "An introduction to ROC analysis", Pattern Recognit. Lett. 27:861, Alg. 1.
    """
    y = np.asarray(y_binary).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise TumorlensError(f"y_binary has {y.size} entries but scores has {s.size}")
    if not np.all(np.isfinite(s)):
        raise TumorlensError("scores contains NaN or infinite values")
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.array([], dtype=int)
    tps = np.cumsum(y)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    return fpr, tpr, thresholds


def auc(x: Any, y: Any) -> float:
    """Area under a curve by the trapezoidal rule; x must be monotonic (either direction). NaN in -> NaN."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise TumorlensError("auc needs two equal-length arrays with at least 2 points")
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    dx = np.diff(x)
    direction = 1.0
    if np.any(dx < 0):
        if np.all(dx <= 0):
            direction = -1.0
        else:
            raise TumorlensError("auc: x is neither increasing nor decreasing")
    return float(direction * np.sum(dx * (y[1:] + y[:-1]) / 2.0))


def roc_auc_ovr(y_true: Any, probs: Any, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """One-vs-rest ROC AUC per class, plus `micro` and `macro`.

    Per class k: AUC of `probs[:, k]` separating class k from all others. `micro`: one AUC over the pooled
    (N*K) one-hot labels and scores. `macro`: unweighted mean of the per-class AUCs.
    A class absent from y_true (or present in every sample) has no ROC curve: its AUC is NaN, it is left
    out of the macro mean, and that is logged at info level: the report and the plot both compute these, and
    `evaluate` warns once, in words a reader can act on (`evaluate.absent_message`).
    Definitions as in scikit-learn's `roc_auc_score` (multi_class='ovr') and Hand & Till (2001), Mach. Learn.
    45:171.
    """
    p, y = _probs(probs, y_true, check_simplex=False)
    k = p.shape[1]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise TumorlensError(f"{len(names)} class names for {k} probability columns")
    onehot = np.eye(k, dtype=bool)[y]
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        npos = int(onehot[:, i].sum())
        if npos == 0 or npos == len(y):
            log.info("class %r is %s in y_true: its ROC AUC is undefined (NaN) and left out of the macro "
                        "average", name, "absent" if npos == 0 else "the only class")
            out[name] = float("nan")
            continue
        fpr, tpr, _ = roc_curve(onehot[:, i], p[:, i])
        out[name] = auc(fpr, tpr)
    per_class = np.array([out[n] for n in names])
    fpr, tpr, _ = roc_curve(onehot.ravel(), p.ravel())
    out["micro"] = auc(fpr, tpr)
    out["macro"] = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")
    return out


# -------------------------------------------------------------------------------------- calibration
def softmax(logits: Any, T: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / T, computed stably (max subtracted before exp)."""
    if not 0.0 < float(T) < float("inf"):  # T <= 0 inverted the ranking (or gave NaN) without a word
        raise TumorlensError(f"the softmax temperature must be a positive number, got {T}")
    z = np.asarray(logits, dtype=np.float64) / float(T)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def reliability_bins(probs: Any, y_true: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label reliability diagram data on `n_bins` equal-width confidence bins over [0, 1].

    Bin m holds the samples whose confidence (max probability) lies in ((m-1)/M, m/M] (Guo et al. 2017,
    sec. 2). Returns arrays `lower`, `upper` (bin edges), `confidence` (mean confidence), `accuracy`
    (fraction whose top label is right) and `count`; empty bins have count 0 and NaN confidence/accuracy.
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:  # 2.5 failed inside numpy
        raise TumorlensError(f"n_bins must be a whole number >= 1, got {n_bins!r}")
    n_bins = int(n_bins)
    p, y = _probs(probs, y_true)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts a value equal to an edge into the bin that edge closes: (lo, hi]
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"lower": edges[:-1], "upper": edges[1:], "confidence": mean_conf, "accuracy": acc,
            "count": count.astype(np.int64)}


def ece(probs: Any, y_true: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top label, equal-width bins.

    ECE = sum_m |B_m|/N * |acc(B_m) - conf(B_m)|  (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of
    Modern Neural Networks", ICML, eq. 3; Naeini et al. 2015). 0 is perfectly calibrated; it is a binned
    estimate, so it depends on n_bins and is biased upward on small test sets.
    """
    b = reliability_bins(probs, y_true, n_bins)
    n = b["count"].sum()
    if n == 0:
        return float("nan")
    nz = b["count"] > 0
    return float(np.sum(b["count"][nz] / n * np.abs(b["accuracy"][nz] - b["confidence"][nz])))


def brier(probs: Any, y_true: Any) -> float:
    """Multi-class Brier score: mean over samples of sum over classes of (p_k - 1[y = k])^2, in [0, 2].

    Brier (1950), Mon. Weather Rev. 78:1, original multi-category form (note scikit-learn's
    `brier_score_loss` is the binary form, half of this for K = 2). A proper scoring rule: rewards both
    calibration and sharpness.
    """
    p, y = _probs(probs, y_true)
    if len(y) == 0:
        return float("nan")
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def nll(probs: Any, y_true: Any, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (cross-entropy) of the true class."""
    p, y = _probs(probs, y_true)
    if len(y) == 0:
        return float("nan")
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def _nll_logits(z: np.ndarray, y: np.ndarray, T: float) -> float:
    s = z / T
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    return float(np.mean(lse - s[np.arange(len(y)), y]))


def fit_temperature(logits: Any, y_true: Any, bounds: tuple[float, float] = (0.05, 20.0),
                    tol: float = 1e-5) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) on held-out (validation) data.

    Temperature scaling (Guo et al. 2017, sec. 4.2): one scalar, so argmax and accuracy are unchanged and
    only confidence moves. The NLL is convex in 1/T (log-sum-exp of an affine function minus a linear
    one), hence unimodal in log T, so a golden-section search over log T within `bounds` finds the global
    minimum (Kiefer 1953; Press et al., Numerical Recipes, sec. 10.2). Fit it on validation data, never on
    the test set you report. A result on a bound is logged (e.g. separable data pushes T -> 0).
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise TumorlensError(f"logits must be an (N, K) array with K >= 2, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise TumorlensError("logits contains NaN or infinite values")
    y = _labels(y_true, z.shape[1])
    if len(y) != len(z) or len(y) == 0:
        raise TumorlensError(f"fit_temperature needs matching, non-empty logits ({len(z)}) and labels ({len(y)})")
    if not 0 < bounds[0] < bounds[1] < float("inf"):  # (0, 1) raised "math domain error", reversed gave 1.0
        raise TumorlensError(f"fit_temperature bounds must be 0 < low < high, got {tuple(bounds)}")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    f = lambda t: _nll_logits(z, y, math.exp(t))  # noqa: E731
    g = (math.sqrt(5) - 1) / 2  # 1/phi
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    t = (a + b) / 2
    # the ends are never evaluated by the search; take them if they beat the interior point
    best = min((f(t), t), (f(lo), lo), (f(hi), hi))[1]
    if best - lo < 10 * tol or hi - best < 10 * tol:
        log.warning("fitted temperature %.4g is at the search bound %s", math.exp(best), bounds)
    return float(math.exp(best))


# ------------------------------------------------------------------------------ selective prediction
def risk_coverage(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy on the answered cases as the model abstains on its least confident ones.

    Samples are sorted by confidence, highest first; the model answers every sample whose confidence is
    >= a threshold. One point per distinct confidence value (a threshold cannot split a tie), so
    `coverage` (fraction answered) increases strictly to 1.0 and `accuracy[i]` is the accuracy on the
    answered set at `coverage[i]`; risk = 1 - accuracy. Geifman & El-Yaniv (2017), "Selective
    classification for deep neural networks", NeurIPS.
    """
    c = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct).astype(bool).ravel()
    if c.shape != ok.shape:
        raise TumorlensError(f"confidence has {c.size} entries but correct has {ok.size}")
    if c.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-c, kind="mergesort")
    c, ok = c[order], ok[order]
    ends = np.r_[np.flatnonzero(np.diff(c)), c.size - 1]
    answered = ends + 1
    return answered / c.size, np.cumsum(ok)[ends] / answered


def threshold_for_coverage(confidence: Any, target_coverage: float) -> float:
    """Largest confidence threshold t such that answering `confidence >= t` covers >= target_coverage.

    With ties at t the achieved coverage can exceed the target. target 0 -> +inf (answer nothing).
    """
    if not 0.0 <= target_coverage <= 1.0:
        raise TumorlensError(f"target_coverage must be in [0, 1], got {target_coverage}")
    c = np.sort(np.asarray(confidence, dtype=np.float64).ravel())[::-1]
    if c.size == 0:
        raise TumorlensError("threshold_for_coverage needs at least one confidence value")
    if np.isnan(c).any():  # NaN sorts first: the threshold came out covering less than the target (an audit)
        raise TumorlensError("threshold_for_coverage: confidence values hold NaN")
    k = math.ceil(target_coverage * c.size - 1e-9)  # the epsilon keeps 0.3 * 10 from rounding up to 4
    if k <= 0:
        return float("inf")
    return float(c[min(k, c.size) - 1])


def accuracy_at_coverage(confidence: Any, correct: Any, target_coverage: float) -> dict[str, float]:
    """Answer the `target_coverage` most confident cases; returns threshold, achieved coverage,
    n_answered and the accuracy on them (NaN if nothing is answered)."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct).astype(bool).ravel()
    if c.shape != ok.shape:
        raise TumorlensError(f"confidence has {c.size} entries but correct has {ok.size}")
    t = threshold_for_coverage(c, target_coverage)
    answered = c >= t
    n = int(answered.sum())
    return {"target_coverage": float(target_coverage), "threshold": t, "coverage": n / c.size,
            "n_answered": n, "accuracy": float(ok[answered].mean()) if n else float("nan")}


# ------------------------------------------------------------------------------- paired comparison
def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """McNemar's test that two classifiers scored on the same samples have the same error rate.

    b = #(A right, B wrong), c = #(A wrong, B right); only these discordant pairs matter. When b + c < 25
    the exact two-sided binomial test is used: p = min(1, 2 * P[Bin(b+c, 1/2) <= min(b, c)]) and
    statistic = min(b, c); otherwise the chi-square approximation with Edwards' continuity correction,
    statistic = (|b - c| - 1)^2 / (b + c) on 1 d.f. (McNemar 1947, Psychometrika 12:153; Edwards 1948;
    the b+c < 25 rule as in statsmodels' `mcnemar`). chi2 survival on 1 d.f. is erfc(sqrt(x/2)).
    """
    a = np.asarray(correct_a).astype(bool).ravel()
    bb = np.asarray(correct_b).astype(bool).ravel()
    if a.shape != bb.shape:
        raise TumorlensError(f"correct_a has {a.size} entries but correct_b has {bb.size}")
    b = int((a & ~bb).sum())
    c = int((~a & bb).sum())
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    if n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
        return {"b": b, "c": c, "statistic": float(k), "p_value": min(1.0, 2.0 * tail), "method": "exact"}
    stat = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "statistic": float(stat), "p_value": float(math.erfc(math.sqrt(stat / 2.0))),
            "method": "chi2"}


# ----------------------------------------------------------------------------------- tumour misses
def miss_rate(y_true: Any, y_pred: Any, negative_class_index: int | None = None,
              class_names: Sequence[str] = CLASSES) -> dict[str, Any]:
    """How often a tumour is called "no tumour" - the costliest error of a screening aid.

    `overall`: among samples whose true class is a tumour class, the fraction predicted as the negative
    class; `per_class`: the same for each tumour class; `false_alarm`: among true negatives, the fraction
    predicted as any tumour. Each entry has `n`, `count`, `rate` and a 95 % Wilson `ci`. The negative
    class defaults to "notumor" in class_names.
    """
    names = [str(c) for c in class_names]
    k = len(names)
    if negative_class_index is None:
        if NEGATIVE_CLASS not in names:
            raise TumorlensError(f"no {NEGATIVE_CLASS!r} class in {names}; pass negative_class_index")
        negative_class_index = names.index(NEGATIVE_CLASS)
    if not 0 <= negative_class_index < k:
        raise TumorlensError(f"negative_class_index {negative_class_index} outside 0..{k - 1}")
    yt, yp = _labels(y_true, k), _labels(y_pred, k, "y_pred")
    if len(yt) != len(yp):
        raise TumorlensError(f"y_true has {len(yt)} entries but y_pred has {len(yp)}")
    neg = negative_class_index

    def entry(mask: np.ndarray, hit: np.ndarray) -> dict[str, Any]:
        n, m = int(mask.sum()), int((mask & hit).sum())
        return {"n": n, "count": m, "rate": m / n if n else float("nan"), "ci": list(wilson_ci(m, n))}

    called_negative = yp == neg
    return {
        "negative_class": names[neg],
        "overall": entry(yt != neg, called_negative),
        "per_class": {names[i]: entry(yt == i, called_negative) for i in range(k) if i != neg},
        "false_alarm": entry(yt == neg, ~called_negative),
    }


# ---------------------------------------------------------------------------------------- summary
def summarize(y_true: Any, probs: Any, class_names: Sequence[str] = CLASSES, n_bins: int = 15) -> dict[str, Any]:
    """Everything an evaluation report needs, as plain JSON values (floats, ints, lists; NaN -> None).

    Keys: n, class_names, accuracy, accuracy_ci [lo, hi], balanced_accuracy, macro_f1, weighted_f1,
    confusion_matrix (counts, rows = true), confusion_matrix_normalized (each row divided by its support;
    a row with no samples is all zeros), report (see `classification_report`), roc_auc (see
    `roc_auc_ovr`), ece, brier, nll, mean_confidence and - when a "notumor" class exists - miss_rate.
    """
    names = [str(c) for c in class_names]
    p, y = _probs(probs, y_true)
    if p.shape[1] != len(names):
        raise TumorlensError(f"probs has {p.shape[1]} columns but there are {len(names)} class names")
    if len(y) == 0:
        raise TumorlensError("cannot summarize an empty evaluation set")
    k = len(names)
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    report = classification_report(y, pred, names)
    acc, lo, hi = accuracy_ci(y, pred)
    out: dict[str, Any] = {
        "n": len(y),
        "class_names": names,
        "accuracy": acc,
        "accuracy_ci": [lo, hi],
        "balanced_accuracy": balanced_accuracy(y, pred, k),
        "macro_f1": report["macro avg"]["f1-score"],
        "weighted_f1": report["weighted avg"]["f1-score"],
        "confusion_matrix": cm,
        "confusion_matrix_normalized": _div(cm, cm.sum(axis=1, keepdims=True)),
        "report": report,
        "roc_auc": roc_auc_ovr(y, p, names),
        "ece": ece(p, y, n_bins),
        "brier": brier(p, y),
        "nll": nll(p, y),
        "mean_confidence": float(p.max(axis=1).mean()),
    }
    if NEGATIVE_CLASS in names:
        out["miss_rate"] = miss_rate(y, pred, names.index(NEGATIVE_CLASS), names)
    return jsonable(out)
