"""Metrics against values derived by hand (worked examples in the comments)."""
from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from tumorlens import metrics as M
from tumorlens.config import CLASSES, TumorlensError

# ------------------------------------------------------------------------------------------------
# Worked example 1: 3 classes, 8 samples
#   y_true = 0 0 0 1 1 1 2 2
#   y_pred = 0 0 1 1 1 1 2 0
# Confusion matrix (rows true, cols predicted):
#             p0 p1 p2 | support
#     t0    [  2  1  0 ]   3
#     t1    [  0  3  0 ]   3
#     t2    [  1  0  1 ]   2
#   col sum    3  4  1
# precision = diag / col sum : 2/3, 3/4, 1/1
# recall    = diag / support : 2/3, 3/3, 1/2
# F1 = 2PR/(P+R)            : 2/3, 2*(3/4)/(7/4) = 6/7, 2*(1/2)/(3/2) = 2/3
# accuracy = 6/8 = 0.75
# macro P  = (2/3 + 3/4 + 1)/3   = 29/36        macro R = (2/3 + 1 + 1/2)/3 = 13/18
# macro F1 = (2/3 + 6/7 + 2/3)/3 = 46/63
# weighted P  = (3*2/3 + 3*3/4 + 2*1)/8   = 6.25/8 = 25/32
# weighted R  = (3*2/3 + 3*1 + 2*1/2)/8   = 6/8 (= accuracy, always)
# weighted F1 = (3*2/3 + 3*6/7 + 2*2/3)/8 = (2 + 18/7 + 4/3)/8 = 31/42
# balanced accuracy = macro recall = 13/18
# ------------------------------------------------------------------------------------------------
Y3 = [0, 0, 0, 1, 1, 1, 2, 2]
P3 = [0, 0, 1, 1, 1, 1, 2, 0]
N3 = ["a", "b", "c"]


def test_confusion_matrix_hand():
    cm = M.confusion_matrix(Y3, P3, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 3, 0], [1, 0, 1]]
    with pytest.raises(TumorlensError):
        M.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(TumorlensError):
        M.confusion_matrix([0, 1], [0], 3)


def test_classification_report_hand():
    r = M.classification_report(Y3, P3, N3)
    approx = pytest.approx
    assert r["a"] == {"precision": approx(2 / 3), "recall": approx(2 / 3), "f1-score": approx(2 / 3), "support": 3}
    assert r["b"] == {"precision": approx(3 / 4), "recall": approx(1.0), "f1-score": approx(6 / 7), "support": 3}
    assert r["c"] == {"precision": approx(1.0), "recall": approx(1 / 2), "f1-score": approx(2 / 3), "support": 2}
    assert r["accuracy"] == approx(0.75)
    assert r["macro avg"] == {"precision": approx(29 / 36), "recall": approx(13 / 18),
                              "f1-score": approx(46 / 63), "support": 8}
    assert r["weighted avg"] == {"precision": approx(25 / 32), "recall": approx(0.75),
                                 "f1-score": approx(31 / 42), "support": 8}
    assert list(r) == ["a", "b", "c", "accuracy", "macro avg", "weighted avg"]
    text = M.format_report(r)
    assert "weighted avg" in text and "0.857" in text and "accuracy" in text


def test_report_zero_division_and_unseen_class():
    # class "d" is neither true nor predicted: all zeros (zero_division=0), and it still counts in macro
    r = M.classification_report(Y3, P3, N3 + ["d"])
    assert r["d"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    assert r["macro avg"]["f1-score"] == pytest.approx((46 / 63) * 3 / 4)
    assert r["weighted avg"]["f1-score"] == pytest.approx(31 / 42)
    # a class predicted but never true: precision 0 (0 TP / 1 FP), recall 0/0 -> 0
    r = M.classification_report([0, 0], [0, 1], ["x", "y"])
    assert r["y"]["precision"] == 0.0 and r["y"]["recall"] == 0.0 and r["y"]["f1-score"] == 0.0


def test_balanced_accuracy_hand():
    assert M.balanced_accuracy(Y3, P3) == pytest.approx(13 / 18)
    # classes without true samples are ignored: recalls of class 0 (1/2) and 1 (1/1) only
    assert M.balanced_accuracy([0, 0, 1], [0, 2, 1], k=3) == pytest.approx(0.75)
    # majority-class predictor on a 9:1 set scores 1/2, not 0.9
    assert M.balanced_accuracy([0] * 9 + [1], [0] * 10) == pytest.approx(0.5)


# Wilson 95 % interval for 8/10: p = 0.8, z^2 = 3.8416, denom = 1 + 0.38416 = 1.38416
#   centre = (0.8 + 0.19208)/1.38416 = 0.71675;  half = 1.96/1.38416 * sqrt(0.016 + 0.009604) = 0.22658
#   -> (0.49017, 0.94333), the published value (0.490, 0.943) (e.g. Newcombe 1998, Stat. Med. 17:857).
def test_wilson_ci_known_values():
    lo, hi = M.wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=5e-4) and hi == pytest.approx(0.9433, abs=5e-4)
    lo, hi = M.wilson_ci(0, 10)  # stays inside [0, 1], unlike the Wald interval
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-4)
    assert M.wilson_ci(10, 10)[1] == 1.0
    assert M.wilson_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(TumorlensError):
        M.wilson_ci(11, 10)
    acc, lo, hi = M.accuracy_ci([0] * 10, [0] * 8 + [1] * 2)
    assert acc == pytest.approx(0.8) and (lo, hi) == pytest.approx(M.wilson_ci(8, 10))


# ------------------------------------------------------------------------------------------------
# Worked example 2: binary ROC with ties
#   y      = 1   1   0   0
#   score  = .5  .5  .5  .1
# distinct thresholds (desc): inf, 0.5, 0.1
#   t=inf : TP 0, FP 0 -> (0, 0)
#   t=0.5 : TP 2, FP 1 -> (fpr 1/2, tpr 1)    <- the three tied samples enter together (diagonal step)
#   t=0.1 : TP 2, FP 2 -> (1, 1)
# AUC = trapezoids 0.5*(0+1)/2 + 0.5*(1+1)/2 = 0.25 + 0.5 = 0.75
# Check by pairs (Mann-Whitney): pos {.5,.5} vs neg {.5,.1}: 0.5 + 1 + 0.5 + 1 = 3 of 4 pairs = 0.75
# ------------------------------------------------------------------------------------------------
def test_roc_curve_ties_hand():
    fpr, tpr, thr = M.roc_curve([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.1])
    assert fpr.tolist() == [0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 1.0, 1.0]
    assert thr[0] == np.inf and thr[1:].tolist() == [0.5, 0.1]
    assert M.auc(fpr, tpr) == pytest.approx(0.75)
    assert M.auc(fpr[::-1], tpr[::-1]) == pytest.approx(0.75)  # decreasing x is fine
    with pytest.raises(TumorlensError):
        M.auc([0, 1, 0.5], [0, 1, 1])


def _pairwise_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    d = pos[:, None] - neg[None, :]
    return ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size


def test_roc_auc_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.4 * y, 1)  # rounding makes many ties
    fpr, tpr, thr = M.roc_curve(y, s)
    assert len(thr) == len(np.unique(s)) + 1  # one point per distinct score, plus the (0, 0) start
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert M.auc(fpr, tpr) == pytest.approx(_pairwise_auc(y, s))


def test_roc_auc_ovr_micro_macro_and_absent_class(caplog):
    # perfect separation: every per-class, micro and macro AUC is 1
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[y] * 0.7 + 0.1
    r = M.roc_auc_ovr(y, probs, N3)
    assert r == {"a": 1.0, "b": 1.0, "c": 1.0, "micro": 1.0, "macro": 1.0}
    # class "c" absent from y_true -> NaN, excluded from macro, with a warning
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]])
    with caplog.at_level(logging.INFO, logger="tumorlens.metrics"):
        r = M.roc_auc_ovr(y, probs, N3)
    assert math.isnan(r["c"])
    assert any("'c'" in rec.getMessage() and "absent" in rec.getMessage() for rec in caplog.records)
    # a: pos scores {.6,.2} vs neg {.5,.1}: (.6>.5)(.6>.1)(.2<.5)(.2>.1) = 3/4 ; b: {.4,.8} vs {.3,.5} = 3/4
    assert r["a"] == pytest.approx(0.75) and r["b"] == pytest.approx(0.75)
    assert r["macro"] == pytest.approx(0.75)
    onehot = np.eye(3)[y]
    assert r["micro"] == pytest.approx(_pairwise_auc(onehot.ravel(), probs.ravel()))


# ------------------------------------------------------------------------------------------------
# Worked example 3: calibration, 2 classes, 4 samples, 5 bins of width 0.2 ((0,.2], ..., (.8,1])
#   probs         y  top  conf  correct  bin
#   [.95, .05]    0   0   .95     1     (.8,1]
#   [.15, .85]    0   1   .85     0     (.8,1]
#   [.65, .35]    0   0   .65     1     (.6,.8]
#   [.45, .55]    1   1   .55     1     (.4,.6]
# ECE = 1/4*|1-.55| + 1/4*|1-.65| + 2/4*|0.5 - 0.9| = (0.45 + 0.35 + 0.8)/4 = 0.4
# Brier, per sample sum_k (p_k - onehot_k)^2:
#   .05^2+.05^2 = .005 ; .85^2+.85^2 = 1.445 ; .35^2+.35^2 = .245 ; .45^2+.45^2 = .405
#   mean = 2.1/4 = 0.525
# ------------------------------------------------------------------------------------------------
PC = np.array([[0.95, 0.05], [0.15, 0.85], [0.65, 0.35], [0.45, 0.55]])
YC = [0, 0, 0, 1]


def test_ece_brier_reliability_hand():
    assert M.ece(PC, YC, n_bins=5) == pytest.approx(0.4)
    assert M.brier(PC, YC) == pytest.approx(0.525)
    b = M.reliability_bins(PC, YC, n_bins=5)
    assert b["count"].tolist() == [0, 0, 1, 1, 2]
    assert b["confidence"][2:] == pytest.approx([0.55, 0.65, 0.9])
    assert b["accuracy"][2:] == pytest.approx([1.0, 1.0, 0.5])
    assert np.isnan(b["confidence"][0]) and np.isnan(b["accuracy"][1])
    # a confidence exactly on an edge goes to the bin it closes: (0.4, 0.5] with 10 bins
    b = M.reliability_bins([[0.5, 0.5]], [0], n_bins=10)
    assert b["count"][4] == 1
    # perfect one-hot predictions: ECE 0, Brier 0
    assert M.ece(np.eye(3), [0, 1, 2]) == 0.0 and M.brier(np.eye(3), [0, 1, 2]) == 0.0
    with pytest.raises(TumorlensError, match="softmax"):
        M.ece(np.array([[2.0, -1.0]]), [0])


def test_softmax():
    p = M.softmax([[1000.0, 1000.0, 0.0]])  # stable for large logits
    assert p[0] == pytest.approx([0.5, 0.5, 0.0])
    assert M.softmax([[0.0, math.log(3)]], T=1)[0] == pytest.approx([0.25, 0.75])
    assert M.softmax([[0.0, 2 * math.log(3)]], T=2)[0] == pytest.approx([0.25, 0.75])


@pytest.mark.parametrize("t0", [0.5, 2.0])
def test_fit_temperature_recovers_known_temperature(t0):
    # labels drawn from softmax(z / T0) make T0 the NLL-optimal temperature for logits z (in expectation)
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 3.0, size=(4000, 4))
    p = M.softmax(z, t0)
    y = (p.cumsum(axis=1) > rng.random((len(z), 1))).argmax(axis=1)
    t = M.fit_temperature(z, y)
    assert abs(t - t0) < 0.1 * t0
    # scaling by the fitted T never increases NLL and leaves the argmax alone
    assert M.nll(M.softmax(z, t), y) <= M.nll(M.softmax(z), y) + 1e-12
    assert np.array_equal(M.softmax(z, t).argmax(1), z.argmax(1))


# ------------------------------------------------------------------------------------------------
# Selective prediction, by hand:
#   confidence .9 .8 .7 .6, correct 1 1 0 1 -> coverage 1/4 .. 1, accuracy 1, 1, 2/3, 3/4
#   ties: confidence .9 .9 .5, correct 1 0 1 -> one point per distinct threshold:
#         coverage 2/3 (acc 1/2), 1 (acc 2/3)
# ------------------------------------------------------------------------------------------------
def test_risk_coverage_hand_and_shape():
    cov, acc = M.risk_coverage([0.6, 0.9, 0.7, 0.8], [1, 1, 0, 1])
    assert cov == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert acc == pytest.approx([1.0, 1.0, 2 / 3, 0.75])
    cov, acc = M.risk_coverage([0.9, 0.5, 0.9], [1, 1, 0])
    assert cov == pytest.approx([2 / 3, 1.0]) and acc == pytest.approx([0.5, 2 / 3])
    # informative confidence: coverage rises strictly to 1, accuracy falls from high to the overall value
    rng = np.random.default_rng(3)
    conf = rng.random(500)
    correct = rng.random(500) < conf
    cov, acc = M.risk_coverage(conf, correct)
    assert np.all(np.diff(cov) > 0) and cov[-1] == 1.0
    assert acc[-1] == pytest.approx(correct.mean())
    assert acc[: len(acc) // 10].mean() > acc[-1]
    # if confidence ranks every correct case first, accuracy never rises as coverage grows
    cov, acc = M.risk_coverage(correct + 0.1 * conf, correct)
    assert np.all(np.diff(acc) <= 1e-12)


def test_threshold_and_accuracy_at_coverage():
    conf = [0.9, 0.8, 0.7, 0.6]
    assert M.threshold_for_coverage(conf, 0.5) == 0.8
    assert M.threshold_for_coverage(conf, 0.6) == 0.7  # ceil(2.4) = 3 answered
    assert M.threshold_for_coverage(conf, 1.0) == 0.6
    assert M.threshold_for_coverage(conf, 0.0) == math.inf
    # 0.3 * 10 is 3.0000000000000004 in floating point; still 3 answered, not 4
    conf10 = np.linspace(1.0, 0.1, 10)
    assert M.threshold_for_coverage(conf10, 0.3) == pytest.approx(0.8)
    r = M.accuracy_at_coverage(conf, [1, 1, 0, 1], 0.5)
    assert r["n_answered"] == 2 and r["coverage"] == 0.5 and r["accuracy"] == 1.0 and r["threshold"] == 0.8
    r = M.accuracy_at_coverage([0.9, 0.9, 0.5], [1, 0, 1], 0.5)  # a tie pushes coverage past the target
    assert r["n_answered"] == 2 and r["accuracy"] == 0.5
    with pytest.raises(TumorlensError):
        M.threshold_for_coverage(conf, 1.5)


# ------------------------------------------------------------------------------------------------
# McNemar by hand
#   exact: b = 2, c = 8, n = 10: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56/1024 = 0.109375
#   chi2 : b = 10, c = 25, n = 35 >= 25: stat = (|10-25| - 1)^2 / 35 = 196/35 = 5.6,
#          p = P[chi2_1 > 5.6] = erfc(sqrt(2.8)) = 0.017960
# ------------------------------------------------------------------------------------------------
def test_mcnemar_hand():
    a = [1] * 2 + [0] * 8 + [1] * 5 + [0] * 3  # 5 both right, 3 both wrong: concordant, ignored
    b = [0] * 2 + [1] * 8 + [1] * 5 + [0] * 3
    r = M.mcnemar(a, b)
    assert (r["b"], r["c"], r["method"]) == (2, 8, "exact")
    assert r["p_value"] == pytest.approx(0.109375) and r["statistic"] == 2.0
    assert M.mcnemar(b, a)["p_value"] == pytest.approx(0.109375)  # symmetric
    r = M.mcnemar([1] * 10 + [0] * 25, [0] * 10 + [1] * 25)
    assert (r["b"], r["c"], r["method"]) == (10, 25, "chi2")
    assert r["statistic"] == pytest.approx(5.6) and r["p_value"] == pytest.approx(0.017960, abs=1e-6)
    assert M.mcnemar([1, 0], [1, 0])["p_value"] == 1.0  # no discordant pairs
    assert M.mcnemar([1, 0], [0, 1])["p_value"] == 1.0  # b = c = 1: 2 * (1/4 + 2/4) capped at 1


# ------------------------------------------------------------------------------------------------
# Miss rate, classes (glioma, meningioma, notumor, pituitary), negative = notumor (2)
#   y_true = g g g g m m p p n n
#   y_pred = g n n g m n p p n g
#   tumours: 8, called notumor: 3 -> 3/8 ; glioma 2/4, meningioma 1/2, pituitary 0/2
#   false alarm: notumor 2, called a tumour 1 -> 1/2
# ------------------------------------------------------------------------------------------------
def test_miss_rate_hand():
    yt = [0, 0, 0, 0, 1, 1, 3, 3, 2, 2]
    yp = [0, 2, 2, 0, 1, 2, 3, 3, 2, 0]
    r = M.miss_rate(yt, yp)  # negative class found by name in CLASSES
    assert r["negative_class"] == "notumor"
    assert (r["overall"]["count"], r["overall"]["n"]) == (3, 8) and r["overall"]["rate"] == 3 / 8
    assert r["overall"]["ci"] == pytest.approx(list(M.wilson_ci(3, 8)))
    assert {k: v["rate"] for k, v in r["per_class"].items()} == {"glioma": 0.5, "meningioma": 0.5,
                                                                  "pituitary": 0.0}
    assert r["false_alarm"]["rate"] == 0.5
    assert M.miss_rate(yt, yp, 2, CLASSES) == r
    with pytest.raises(TumorlensError):
        M.miss_rate([0], [0], None, ["x", "y"])


def test_summarize_is_json_and_handles_absent_class(caplog):
    # no "notumor" sample in y_true: its AUC is NaN -> None in JSON, macro over the other three
    rng = np.random.default_rng(5)
    y = np.array([0, 1, 3] * 10)
    probs = M.softmax(rng.normal(size=(30, 4)) + 2.5 * np.eye(4)[y])
    with caplog.at_level(logging.WARNING):
        s = M.summarize(y, probs, CLASSES)
    text = json.dumps(s, allow_nan=False)  # strict JSON: no NaN anywhere
    back = json.loads(text)
    assert back["roc_auc"]["notumor"] is None
    per = [back["roc_auc"][c] for c in ("glioma", "meningioma", "pituitary")]
    assert back["roc_auc"]["macro"] == pytest.approx(np.mean(per))
    assert back["n"] == 30 and back["class_names"] == list(CLASSES)
    pred = probs.argmax(1)
    assert back["accuracy"] == pytest.approx((pred == y).mean())
    lo, hi = back["accuracy_ci"]
    assert lo <= back["accuracy"] <= hi
    assert np.array(back["confusion_matrix"]).sum() == 30
    cmn = np.array(back["confusion_matrix_normalized"])
    assert cmn[[0, 1, 3]].sum(1) == pytest.approx([1, 1, 1]) and cmn[2].sum() == 0
    assert back["macro_f1"] == back["report"]["macro avg"]["f1-score"]
    assert back["ece"] == pytest.approx(M.ece(probs, y)) and back["brier"] == pytest.approx(M.brier(probs, y))
    assert back["miss_rate"]["false_alarm"]["rate"] is None  # no negatives to alarm on
    with pytest.raises(TumorlensError):
        M.summarize(y, probs, ["a", "b", "c"])


def test_jsonable():
    out = M.jsonable({"a": np.float32(0.5), "b": np.array([1, 2]), "c": (np.nan, np.inf), 3: np.bool_(True)})
    assert out == {"a": 0.5, "b": [1, 2], "c": [None, None], "3": True}


def test_format_report_shows_na_for_values_stored_as_null_and_skips_a_disclaimer():
    """classification_report.json read back: JSON null (NaN) and the "disclaimer" string used to crash it."""
    r = M.classification_report(Y3, P3, N3)
    r["b"]["precision"] = None
    text = M.format_report({"disclaimer": "research use only", **r})
    line = next(row for row in text.splitlines() if row.strip().startswith("b "))
    assert line.split() == ["b", "n/a", "1.000", "0.857", "3"]
    assert "research use only" not in text


def test_a_temperature_that_is_not_positive_or_confidences_with_nan_are_refused():
    """T = -1 inverted the ranking silently and T = 0 gave NaN; a NaN confidence sorted first and the threshold
    covered 0.25 where 0.5 was asked for (a library audit)."""
    from tumorlens.metrics import softmax, threshold_for_coverage

    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(TumorlensError, match="temperature must be a positive number"):
            softmax([[1.0, 2.0]], t)
    with pytest.raises(TumorlensError, match="hold NaN"):
        threshold_for_coverage([0.9, float("nan"), 0.5, 0.7], 0.5)


def test_metric_arguments_out_of_their_domain_are_one_error_or_undefined_not_a_wrong_number():
    """A library audit: fit_temperature bounds (0, 1) raised a math domain error and reversed bounds returned
    1.0; wilson_ci with z < 0 put the lower bound above the upper; accuracy_ci of nothing said 0.0; class names
    and n_bins = 2.5 failed inside numpy."""
    import math

    from tumorlens.metrics import accuracy_ci, fit_temperature, reliability_bins, wilson_ci

    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    for bounds in ((0.0, 1.0), (5.0, 0.5)):
        with pytest.raises(TumorlensError, match="bounds must be 0 < low < high"):
            fit_temperature(z, [0, 1], bounds=bounds)
    with pytest.raises(TumorlensError, match="positive z"):
        wilson_ci(5, 10, z=-1.96)
    assert math.isnan(accuracy_ci([], [])[0])
    with pytest.raises(TumorlensError, match="integer class indices, got <U"):
        accuracy_ci(["glioma"], ["glioma"])
    with pytest.raises(TumorlensError, match="n_bins must be a whole number"):
        reliability_bins(np.array([[0.6, 0.4]]), [0], n_bins=2.5)
