"""Telling brain MRI slices from photographs and textures that pass every image check (the look-alike detector).

A grayscale photograph or a texture cut to an ellipse on black is, by every statistic `refusal.check_stats`
computes, a bright filled ellipse on a dark background, and its pooled features lie as close to the training
slices as real slices do (`refusal.FeatureOOD` scored such images at 0.4-0.95x its threshold: 23 of 73 in a
throwaway set, and 40 of 326 fresh non-MRI probes a helper built on 2026-11-28 were answered:
benchmarks/fresh_probes.md). The features still tell them apart, along directions a distance to the class means
does not weigh: a logistic regression on the same pooled features, fitted on the training slices against
photographs and textures, refuses 87% of the variants of a photograph left out of its fit
(benchmarks/lookalike_check.md, each source left out in turn), and in the bundled model none of the clean test
slices the distance lets through. Fitted against generated textures alone it refused only 25-93% of photographs'
variants (throwaway experiment): the photographs are what it needs to see.

Negative images (`negative_images`): variants (crops, turns, inverted grey levels, gamma, cut to an ellipse or a
circle on black, vignettes, a bright rim like a skull, blur) of the photographs bundled with scikit-image and
matplotlib - read as files from their package folders, neither package imported - and of generated textures
(smoothed noise, 1/f fields, "dead leaves" images: Lee, Mumford and Huang 2001, occluding shapes with
natural-image statistics). Only the variants that pass the image checks are used: the others are refused anyway.
The positives are the training slices, their 90- and 270-degree turns and upside-down copies, and three copies
through the model's own training augmentation (skull stripping, grey-level curves, T2-like rendering, turns): fitted
on the slices and turns alone, the detector refused most skull-stripped and re-curved slices and real MRI of other
kinds (with the feature distance, 74% of the test slices skull-stripped by the augmentation against 17% by the
distance alone, all 9 slices of nibabel's EPI volume against none; throwaway experiment), with the augmented copies
20% and none. The threshold is the `QUANTILE` (99.9th) percentile of the upright training and validation slices'
scores.

Numpy, except `augmented` (the training augmentation runs in torch); the Predictor supplies the features.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .config import TumorlensError

log = logging.getLogger(__name__)

# photographs bundled with installed packages: (package, path inside it). Read as files; a missing one is skipped
# and the fit records which were used (scikit-image's data folder has held these since 0.19)
PHOTOS: tuple[tuple[str, str], ...] = tuple(("skimage", f"data/{n}") for n in (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "retina.jpg", "rocket.jpg", "lfw_subset.npy")) + (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),)
TEXTURES = ("smoothed_noise", "one_over_f", "dead_leaves")
PER_SOURCE = 40  # variants of each photograph and texture kind
AUG_COPIES = 3  # augmented copies of each training slice among the positives
SEED = 0
# inverse L2 strength of the logistic regression (scikit-learn's C), chosen among 0.003-0.3 with the fresh probes
# and scikit-learn's two photographs (left out of the fit) in view: 0.03 refused as many of them as the weaker
# penalties and more than 0.01 (throwaway experiment, 2026-11-28)
C = 0.03
# threshold: this quantile of the upright training and validation slices' scores. At the feature distance's 0.998
# the detector refused 9.2% of the validation slices skull-stripped as benchmarks/robustness.py strips them and
# 12.9% under its S-shaped curve (2.3% and 7.2% by the feature distance alone); at 0.999 3.0% and 10.3%, while
# still refusing 91% of the fresh probes that pass the image checks (80% by the distance alone; 96% at 0.998).
# Chosen on validation slices and probe sets, not on the test part (throwaway experiment, 2026-11-28)
QUANTILE = 0.999


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (scikit-image takes a second to import)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locs = list(spec.submodule_search_locations or []) if spec else []
    return Path(locs[0]) if locs else None


def _read_photo(path: Path) -> np.ndarray:
    """A bundled photograph as a uint8 grayscale array (lfw_subset.npy, 200 faces of 25 px: a 5 x 5 mosaic)."""
    from PIL import Image

    if path.suffix == ".npy":
        faces = np.load(path, allow_pickle=False)[:25]  # (25, 25, 25) floats in [0, 1]
        mosaic = faces.reshape(5, 5, 25, 25).transpose(0, 2, 1, 3).reshape(125, 125)  # (5*25, 5*25)
        img = Image.fromarray((255 * np.clip(mosaic, 0, 1)).astype(np.uint8)).resize((375, 375), Image.BILINEAR)
        return np.asarray(img)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").convert("L"))  # RGB first: palette and alpha images too


def photo_sources() -> list[tuple[str, str, np.ndarray]]:
    """(name, sha256 of the file, uint8 grayscale) of each bundled photograph found."""
    out = []
    for pkg, rel in PHOTOS:
        base = _package_dir(pkg)
        path = base / rel if base else None
        if path is None or not path.is_file():
            log.info("look-alike detector: %s's %s not found, fitted without it", pkg, rel)
            continue
        try:
            gray = _read_photo(path)
        except (OSError, ValueError) as e:
            log.info("look-alike detector: %s unreadable (%s), fitted without it", path, e)
            continue
        out.append((Path(rel).stem, hashlib.sha256(path.read_bytes()).hexdigest(), gray))
    return out


def _texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A generated texture (size x size, uint8)."""
    from PIL import Image, ImageDraw, ImageFilter

    if kind == "dead_leaves":
        im = Image.new("L", (size, size), int(rng.integers(0, 256)))
        draw = ImageDraw.Draw(im)
        rmin, rmax = 2.0, size * rng.uniform(0.2, 0.6)
        for _ in range(int(rng.integers(200, 1500))):
            # radii drawn from density ~ r^-3 (scale invariance), grey levels uniform
            r = (rmin ** -2 - rng.random() * (rmin ** -2 - rmax ** -2)) ** -0.5
            x, y = rng.uniform(-r, size + r, 2)
            if rng.random() < 0.5:
                draw.ellipse([x - r, y - r * rng.uniform(0.4, 1), x + r, y + r * rng.uniform(0.4, 1)],
                             fill=int(rng.integers(0, 256)))
            else:
                pts = np.array([x, y]) + r * rng.standard_normal((int(rng.integers(3, 7)), 2))
                draw.polygon([tuple(p) for p in pts], fill=int(rng.integers(0, 256)))
        a = np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))), np.float32)
        a = a + rng.normal(0, rng.uniform(0, 6), a.shape)
    else:
        z = rng.standard_normal((size, size))
        f = np.fft.fftfreq(size)
        r = np.sqrt(f[:, None] ** 2 + f[None] ** 2)
        r[0, 0] = 1.0
        if kind == "smoothed_noise":  # a Gaussian low-pass of sigma 1-8 px
            s = rng.uniform(1, 8)
            z = np.real(np.fft.ifft2(np.fft.fft2(z) * np.exp(-2 * (np.pi * s * r) ** 2)))
        else:  # one_over_f: amplitude ~ 1 / f^beta
            z = np.real(np.fft.ifft2(np.fft.fft2(z) / r ** rng.uniform(0.8, 1.6)))
        a = 255 * (z - z.min()) / max(float(z.max() - z.min()), 1e-12)
    return np.clip(a, 0, 255).astype(np.uint8)


def _variant(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random variant of a photograph or texture, as an image checker and the model would meet it."""
    from PIL import Image, ImageFilter

    h, w = gray.shape
    s = max(8, int(min(h, w) * rng.uniform(0.5, 1.0)))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    size = int(rng.choice([128, 256, 384, 512]))
    im = Image.fromarray(gray[y:y + s, x:x + s]).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.15:  # turned by an odd angle onto black (a diamond)
        im = im.rotate(float(rng.uniform(20, 70)), resample=Image.BILINEAR).resize((size, size))
    if rng.random() < 0.2:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
    a = np.rot90(np.asarray(im, np.float32), int(rng.integers(4)))
    if rng.random() < 0.3:
        a = 255 - a
    if rng.random() < 0.5:
        a = 255 * (a / 255) ** rng.uniform(0.5, 2)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    mode = rng.random()
    if mode < 0.6:  # cut to an ellipse (a third of them circles) on black, sometimes with a bright rim
        ry = rng.uniform(0.3, 0.5)
        rx = ry if rng.random() < 0.33 else rng.uniform(0.25, 0.5)
        cy, cx = rng.uniform(-0.05, 0.05, 2)
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        a = a * (d <= 1)
        if rng.random() < 0.25:
            a = np.where((d <= 1) & (d > 1 - rng.uniform(0.02, 0.08)), rng.uniform(160, 255), a)
    elif mode < 0.8:  # a dark vignette
        a = a * np.clip(rng.uniform(1.1, 1.6) - 2 * np.sqrt(yy ** 2 + xx ** 2), 0, 1)
    return np.clip(a, 0, 255).astype(np.uint8)


@lru_cache(maxsize=2)
def negative_images(seed: int = SEED, per_source: int = PER_SOURCE) -> tuple[tuple[str, str, np.ndarray], ...]:
    """(source, source sha256 or 'generated', uint8 image) for `per_source` variants of each bundled photograph
    and each texture kind; deterministic for a seed. Cached: every training run of a process fits with them."""
    rng = np.random.default_rng(seed)
    out = []
    for name, sha, gray in photo_sources():
        out += [(name, sha, _variant(gray, rng)) for _ in range(per_source)]
    for kind in TEXTURES:
        out += [(kind, "generated", _variant(_texture(kind, 256, rng), rng)) for _ in range(per_source)]
    return tuple(out)


@dataclass
class Lookalike:
    """A logistic regression on standardised pooled features: score = w . (f - mean) / scale + b, high for a
    photograph or texture; refuse above `threshold`."""

    mean: np.ndarray  # (D,) of the positives (MRI slices)
    scale: np.ndarray  # (D,) their standard deviations (1 where zero)
    w: np.ndarray  # (D,)
    b: float
    threshold: float = float("inf")

    @classmethod
    def fit(cls, pos: np.ndarray, neg: np.ndarray, c: float = C, iters: int = 50) -> "Lookalike":
        """Weighted, L2-penalised logistic regression by Newton's method: minimises sum_i s_i log-loss_i +
        |w|^2 / (2c), each class weighted to half the total (s_i = n / (2 n_class), scikit-learn's
        class_weight='balanced'); the intercept is not penalised."""
        pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
        if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1] or len(pos) < 2 or len(neg) < 2:
            raise TumorlensError(f"Lookalike.fit needs (N, D) positives and negatives, N >= 2, got {pos.shape} "
                                 f"and {neg.shape}")
        if not c > 0:
            raise TumorlensError(f"Lookalike.fit needs c > 0, got {c}")
        mean, scale = pos.mean(0), pos.std(0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        x = np.concatenate([pos, neg])
        x = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1)  # (N, D + 1), the last column the bias
        y = np.r_[np.zeros(len(pos)), np.ones(len(neg))]
        s = np.r_[np.full(len(pos), len(x) / (2 * len(pos))), np.full(len(neg), len(x) / (2 * len(neg)))]
        reg = np.full(x.shape[1], 1.0 / c)
        reg[-1] = 0.0
        theta = np.zeros(x.shape[1])
        for _ in range(iters):
            p = 1 / (1 + np.exp(-np.clip(x @ theta, -50, 50)))
            grad = x.T @ (s * (p - y)) + reg * theta
            hess = (x * (s * p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(x.shape[1])
            step = np.linalg.solve(hess, grad)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(mean, scale, theta[:-1].copy(), float(theta[-1]))

    def score(self, feats: np.ndarray) -> np.ndarray:
        f = np.asarray(feats, dtype=np.float64)
        if f.ndim == 1:
            f = f[None]
        return ((f - self.mean) / self.scale) @ self.w + self.b

    def to_meta(self, digits: int = 6) -> dict[str, Any]:
        r = lambda a: [float(f"{v:.{digits}g}") for v in np.asarray(a, dtype=np.float64).ravel()]  # noqa: E731
        return {"method": "logistic-regression", "dim": int(len(self.w)), "mean": r(self.mean),
                "scale": r(self.scale), "w": r(self.w), "b": float(f"{self.b:.{digits}g}"),
                "threshold": float(f"{self.threshold:.{digits}g}")}

    @classmethod
    def from_meta(cls, d: dict[str, Any]) -> "Lookalike":
        try:
            det = cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64),
                      np.asarray(d["w"], dtype=np.float64), float(d["b"]), float(d["threshold"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TumorlensError(f"checkpoint look-alike metadata is damaged ({e})") from None
        shapes = {det.mean.shape, det.scale.shape, det.w.shape}
        if (len(shapes) != 1 or det.w.ndim != 1
                or not all(np.isfinite(a).all() for a in (det.mean, det.scale, det.w)) or not np.isfinite(det.b)
                or (det.scale <= 0).any()):
            raise TumorlensError("checkpoint look-alike metadata is damaged (mean, scale and weights inconsistent, "
                                 "not finite or scale not positive)")
        # NaN compares False with every score (the detector off without a word), -inf refuses every input; inf is
        # "never refuse", as for the feature distance
        if np.isnan(det.threshold) or det.threshold == -np.inf:
            raise TumorlensError(f"checkpoint look-alike metadata is damaged (threshold {det.threshold!r})")
        return det


def turned(x: np.ndarray) -> np.ndarray:
    """(N, S, S) -> (3N, S, S): each slice turned 90 and 270 degrees and upside down."""
    return np.concatenate([np.rot90(x, 1, (1, 2)), np.rot90(x, 3, (1, 2)), x[:, ::-1]]).copy()


def augmented(x: np.ndarray, cfg: Any, copies: int = AUG_COPIES, seed: int = SEED) -> np.ndarray:
    """(N, S, S) -> (copies * N, S, S): the slices through the model's own training augmentation
    (`augment.augment` with the checkpoint's turn, contrast, strip and T2 settings, no tumour masks), so that
    the detector accepts what the model was trained to take - skull-stripped, re-curved, T2-like slices."""
    import torch

    from .augment import augment, head_depth

    g = torch.Generator().manual_seed(seed)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)  # (N, 1, S, S)
    chunks = [t[i:i + 512] for i in range(0, len(t), 512)]
    # the head depths for skull stripping, once for all copies (as train.py does): 8.2-8.6 s -> 5.9-6.0 s for 3
    # copies of 2,000 slices (2 threads, throwaway timing), the output identical (depths are per image)
    depths = [head_depth(c) if cfg.strip > 0 else None for c in chunks]
    out = [augment(c, g, turn=cfg.turn, contrast=cfg.contrast, sequence=cfg.sequence, strip=cfg.strip, t2=cfg.t2,
                   depth=d) for _ in range(copies) for c, d in zip(chunks, depths)]
    return torch.cat(out)[:, 0].numpy() if out else np.zeros((0,) + x.shape[1:], np.float32)  # (copies*N, S, S)


def copies(xt: np.ndarray, cfg: Any, max_fit: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """The positives besides the training slices themselves: `turned` and `augmented` copies of at most
    max_fit // 3 evenly spaced training slices (three copies of each)."""
    keep = np.linspace(0, len(xt) - 1, min(len(xt), max_fit // 3)).round().astype(int)
    return turned(xt[keep]), augmented(xt[keep], cfg, AUG_COPIES)


def fit_detector(pos: np.ndarray, neg: np.ndarray, ft: np.ndarray, fv: np.ndarray, c: float = C) -> Lookalike:
    """`Lookalike.fit` on positive and negative features, its threshold the `QUANTILE` of the upright training
    (ft) and validation (fv) slices' scores."""
    det = Lookalike.fit(pos, neg, c)
    det.threshold = float(np.quantile(np.concatenate([det.score(ft), det.score(fv)]), QUANTILE))
    return det


def negative_inputs(pre: Any, seed: int = SEED, per_source: int = PER_SOURCE) -> tuple[np.ndarray, dict[str, Any]]:
    """The negative images that pass the image checks, preprocessed as the Predictor does: (N, S, S) and a note
    of what they are (sources with their file hashes, how many passed). The rows come source by source, in the
    order of the note's `passed_image_checks`. Cached per preprocessing (about 7 s the first time, 2 cores; a test
    session trains dozens of small models)."""
    x, note = _negative_inputs(pre, seed, per_source)
    return x.copy(), json.loads(json.dumps(note))


@lru_cache(maxsize=4)
def _negative_inputs(pre: Any, seed: int, per_source: int) -> tuple[np.ndarray, dict[str, Any]]:
    from .prepare import prepare_frame
    from .readers import Frame

    xs, sources, passed = [], {}, {}
    for name, sha, img in negative_images(seed, per_source):
        sources[name] = sha
        p = prepare_frame(name, Frame(img.astype(np.float32)), pre, refuse=True)
        if p.x is not None:
            xs.append(p.x)
            passed[name] = passed.get(name, 0) + 1
    size = int(pre.size)
    x = np.stack(xs) if xs else np.zeros((0, size, size), np.float32)
    return x, {"sources": sources, "per_source": per_source, "seed": seed, "passed_image_checks": passed,
               "n": int(len(x))}
