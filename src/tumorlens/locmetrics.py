"""Per-map localisation metrics and their summaries, for `tumorlens localize`.

Pure numpy (no model, no files), kept apart from the data reading, measuring loop and output writing of
`tumorlens.localize` (which re-exports the names its importers use) so they can be read and tested alone.

  otsu_threshold   Otsu's histogram threshold (Otsu 1979), used to binarise a map for IoU/Dice;
  map_metrics      pointing hit within POINTING_TOLERANCE of the mask (Zhang et al. 2018, their 15-px
                   tolerance relative to a 512-px slice), energy in mask (Wang et al. 2020), IoU and Dice;
  spearman, ssim   per-image comparison of trained and randomised maps for the parameter-randomisation
                   sanity check (Adebayo et al. 2018); SSIM with a uniform window (Wang et al. 2004);
  bootstrap_ci     seeded percentile bootstrap interval of a mean (N_BOOT resamples);
  summarize        hit rate with Wilson interval for pointing, bootstrap means for the other METRICS;
  summarize_localization
                   a run's per-image rows per source and class, the sanity check (passes when the mean rank
                   correlation is below SANITY_MAX_RANK_CORRELATION), the verdicts against TARGETS and
                   BASELINES, and the recommended method.

Research use only - not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .metrics import wilson_ci

POINTING_TOLERANCE = 0.03  # of the image side
N_BOOT = 2000
METRICS = ("pointing", "energy", "iou", "dice")
BASELINES = ("random", "center")
SANITY_MAX_RANK_CORRELATION = 0.5
TARGETS = {"pointing_game": 0.80, "energy_over_mask_fraction": 3.0}


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (maximises the between-class variance of a histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or v.max() <= v.min():
        return float(v.max()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    between = between[:-1]
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau (empty bins): take its middle
    k = int(best[len(best) // 2])
    return float(edges[k + 1])


@dataclass
class MaskInfo:
    mask: np.ndarray  # (H, W) bool
    rows: np.ndarray  # coordinates of the mask pixels
    cols: np.ndarray
    area: int
    tol: float  # pointing tolerance in pixels


def mask_info(mask: np.ndarray) -> MaskInfo:
    r, c = np.nonzero(mask)
    return MaskInfo(mask, r, c, int(r.size), POINTING_TOLERANCE * max(mask.shape))


def map_metrics(heat: np.ndarray, mi: MaskInfo, region: tuple[slice, slice] | None = None) -> dict[str, float]:
    """Pointing hit (0/1), energy in mask, IoU and Dice at Otsu of one full-resolution map.

    `region` (the crop box within the image) limits the Otsu histogram to the pixels the network saw;
    the map is zero elsewhere anyway.
    """
    total = float(heat.sum(dtype=np.float64))
    if total <= 0 or mi.area == 0:
        return {"pointing": 0.0, "energy": 0.0, "iou": 0.0, "dice": 0.0}
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    d2 = (mi.rows - r) ** 2 + (mi.cols - c) ** 2
    hit = float(d2.min() <= mi.tol ** 2)
    energy = float(heat[mi.mask].sum(dtype=np.float64)) / total
    region = region or (slice(None), slice(None))
    thr = otsu_threshold(heat[region])
    seg = heat > thr
    inter = int(np.count_nonzero(seg & mi.mask))
    n_seg = int(np.count_nonzero(seg))
    union = n_seg + mi.area - inter
    return {"pointing": hit, "energy": energy, "iou": inter / union if union else 0.0,
            "dice": 2 * inter / (n_seg + mi.area) if n_seg + mi.area else 0.0}


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), along the last axis of a 2-D array."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    for i, row in enumerate(a):
        order = np.argsort(row, kind="mergesort")
        s = row[order]
        boundaries = np.flatnonzero(np.diff(s)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [s.size]))
        ranks = np.repeat((starts + ends - 1) / 2.0, ends - starts)
        out[i, order] = ranks
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman rank correlation of two (N, ...) arrays; a constant row gives 0."""
    ra = _rank(np.asarray(a).reshape(len(a), -1))
    rb = _rank(np.asarray(b).reshape(len(b), -1))
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return np.divide((ra * rb).sum(1), den, out=np.zeros(len(ra)), where=den > 0)


def _box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k windows ('valid' positions) of (N, H, W), via cumulative sums."""
    c = np.cumsum(np.cumsum(np.pad(a, ((0, 0), (1, 0), (1, 0))), 1), 2)
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004; uniform k x k window, data range 1) of two (N, H, W) stacks."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ma, mb = _box_mean(a, k), _box_mean(b, k)
    va = _box_mean(a * a, k) - ma * ma
    vb = _box_mean(b * b, k) - mb * mb
    cov = _box_mean(a * b, k) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.reshape(len(s), -1).mean(1)


def bootstrap_ci(values: Sequence[float], rng: np.random.Generator, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1 or np.all(v == v[0]):
        return float(v[0]), float(v[0])
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // v.size)  # bound the index matrix's memory
    for i in range(0, n_boot, step):
        j = min(n_boot, i + step)
        means[i:j] = v[rng.integers(0, v.size, (j - i, v.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(values: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
    """Hit rate with Wilson CI for pointing, mean with bootstrap CI for the others."""
    hits = values["pointing"]
    n = int(hits.size)
    k = int(round(float(hits.sum())))
    out: dict[str, Any] = {"n": n}
    lo, hi = wilson_ci(k, n)
    out["pointing"] = {"rate": k / n if n else float("nan"), "hits": k, "ci95": [lo, hi]}
    for m in METRICS[1:]:
        v = values[m]
        out[m] = {"mean": float(v.mean()) if v.size else float("nan"), "ci95": list(bootstrap_ci(v, rng))}
    return out


def summarize_localization(per_image: list[dict[str, Any]], sources: list[str], methods: list[str],
                           classes: list[str], sanity: dict[str, dict[str, list[float]]], seed: int) -> dict[str, Any]:
    """The summaries of a localisation run from its per-image rows (`<source>.<metric>` columns, 'class',
    'mask_fraction', 'correct') and its sanity lists ({method: {'spearman': [...], 'ssim': [...]}}).

    Returns {'results': {source: {group: summarize(...) + energy_over_mask_fraction}}, 'groups': {group: n,
    mask fraction, accuracy}, 'sanity': {method: trained vs randomised maps}, 'verdicts': {method: targets
    met}, 'best': the method with the highest pointing rate (ties: energy)}; the groups are 'overall' and each
    class present. The bootstrap draws from one generator seeded [seed, 1] in a fixed order (results, groups,
    sanity), so reruns agree.
    """
    boot_rng = np.random.default_rng([seed, 1])
    labels = np.array([r["class"] for r in per_image])
    groups = {"overall": np.ones(len(per_image), bool)}
    for c in classes:
        if (labels == c).any():
            groups[c] = labels == c
    mask_frac = np.array([r["mask_fraction"] for r in per_image])
    correct = np.array([r["correct"] for r in per_image], dtype=float)
    results: dict[str, Any] = {}
    for s in sources:
        vals = {m: np.array([r[f"{s}.{m}"] for r in per_image], dtype=np.float64) for m in METRICS}
        results[s] = {g: summarize({m: v[sel] for m, v in vals.items()}, boot_rng) for g, sel in groups.items()}
        for g, sel in groups.items():
            mf = float(mask_frac[sel].mean())
            results[s][g]["energy_over_mask_fraction"] = results[s][g]["energy"]["mean"] / mf if mf else None
    summary_groups = {}
    for g, sel in groups.items():
        k = int(correct[sel].sum())
        summary_groups[g] = {"n": int(sel.sum()), "mask_fraction_mean": float(mask_frac[sel].mean()),
                             "mask_fraction_ci95": list(bootstrap_ci(mask_frac[sel], boot_rng)),
                             "accuracy": k / int(sel.sum()), "accuracy_ci95": list(wilson_ci(k, int(sel.sum())))}

    sanity_out = {}
    for m in methods:
        sp = np.array(sanity[m]["spearman"])
        ss = np.array(sanity[m]["ssim"])
        sanity_out[m] = {"spearman_mean": float(sp.mean()), "spearman_ci95": list(bootstrap_ci(sp, boot_rng)),
                         "ssim_mean": float(ss.mean()), "ssim_ci95": list(bootstrap_ci(ss, boot_rng)),
                         "passes": bool(sp.mean() < SANITY_MAX_RANK_CORRELATION)}

    def key(m: str) -> tuple[float, float]:
        o = results[m]["overall"]
        return o["pointing"]["rate"], o["energy"]["mean"]

    mf_all = summary_groups["overall"]["mask_fraction_mean"]
    return {"results": results, "groups": summary_groups, "sanity": sanity_out,
            "verdicts": _verdicts(results, methods, sanity_out, mf_all), "best": max(methods, key=key)}


def _verdicts(results: dict[str, Any], methods: list[str], sanity_out: dict[str, Any],
              mf_all: float) -> dict[str, Any]:
    """Per method: which TARGETS it meets, whether it beats every baseline and passes the sanity check."""
    verdicts = {}
    for m in methods:
        o = results[m]["overall"]
        rivals = list(BASELINES) + [f"{m}@randomized"]
        verdicts[m] = {
            "pointing_game_ge_target": o["pointing"]["rate"] >= TARGETS["pointing_game"],
            "energy_ge_3x_mask_fraction": o["energy"]["mean"] >= TARGETS["energy_over_mask_fraction"] * mf_all,
            "above_all_baselines": all(o["pointing"]["rate"] > results[b]["overall"]["pointing"]["rate"]
                                       and o["energy"]["mean"] > results[b]["overall"]["energy"]["mean"]
                                       for b in rivals),
            "sanity_check_passes": sanity_out[m]["passes"],
        }
        verdicts[m]["all"] = all(verdicts[m].values())
    return verdicts
