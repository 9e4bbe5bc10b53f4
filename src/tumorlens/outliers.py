"""Generated images that are not MRI, for outlier exposure in training (`TrainConfig.outliers`, off by default).

Outlier exposure (Hendrycks, Mazeika & Dietterich 2019, "Deep anomaly detection with outlier exposure", ICLR):
besides its usual loss, the network sees images of no class and is pushed towards a uniform answer on them, so
that inputs unlike any training class get low confidence and features of their own. Why try it here: a model
trained with the Kaggle set's CT slices (under their folders' labels) refused 66 of 83 CT slices through the
MRI-only feature distance, one trained without them 30 (README, the CT paragraph): what the network has seen
of non-MRI inputs shapes the refusal.

The generators are deliberately different from the probe images of `tests/probes.py` (and generate no CT,
ultrasound or photographs), so that the refusal tests and `benchmarks/refusal_rates.py` stay out of sample:
1/f-noise textures (whole frame, or inside a head-sized ellipse on black), random filled shapes, and periodic
patterns, each with a random grey-level curve. Everything is drawn from the training run's generator, so a run
stays deterministic and resumes to the same weights.
Research use only - not a medical device.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

KINDS = ("texture", "texture_in_ellipse", "shapes", "pattern")


@lru_cache(maxsize=4)
def _grid(size: int, unit: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(yy, xx) pixel coordinates of a size x size image, in [-1, 1] when `unit`; built once per size (the
    generators run on every training step), never modified."""
    axis = torch.linspace(-1, 1, size) if unit else torch.arange(size).float()
    return torch.meshgrid(axis, axis, indexing="ij")


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _texture(size: int, g: torch.Generator) -> torch.Tensor:
    """1/f^a noise (a in [1, 3]: from grainy to cloudy), scaled to [0, 1]."""
    fy = torch.fft.fftfreq(size).abs()[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    f = torch.sqrt(fy ** 2 + fx ** 2).clamp(min=1.0 / size)
    spec = torch.complex(torch.randn(size, size // 2 + 1, generator=g), torch.randn(size, size // 2 + 1, generator=g))
    img = torch.fft.irfft2(spec / f ** _u(g, 1.0, 3.0), s=(size, size))
    return (img - img.min()) / (img.max() - img.min()).clamp(min=1e-6)


def _ellipse(size: int, g: torch.Generator) -> torch.Tensor:
    yy, xx = _grid(size, True)
    ry, rx, t = _u(g, 0.6, 0.95), _u(g, 0.5, 0.9), _u(g, 0, math.pi)
    y2, x2 = yy * math.cos(t) - xx * math.sin(t), yy * math.sin(t) + xx * math.cos(t)
    return ((y2 / ry) ** 2 + (x2 / rx) ** 2 <= 1.0).float()


def _shapes(size: int, g: torch.Generator) -> torch.Tensor:
    img = torch.full((size, size), _u(g, 0.0, 0.6))
    yy, xx = _grid(size, False)
    for _ in range(int(torch.randint(3, 9, (), generator=g))):
        cy, cx, h, w = _u(g, 0, size), _u(g, 0, size), _u(g, 3, size / 2), _u(g, 3, size / 2)
        inside = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2 <= 1 if _u(g) < 0.5 else \
            ((yy - cy).abs() <= h / 2) & ((xx - cx).abs() <= w / 2)
        img[inside] = _u(g)
    return img


def _pattern(size: int, g: torch.Generator) -> torch.Tensor:
    yy, xx = _grid(size, False)
    t, period = _u(g, 0, math.pi), _u(g, 3, size / 2)
    wave = torch.sin(2 * math.pi * (yy * math.cos(t) + xx * math.sin(t)) / period)
    return (wave > 0).float() * 0.8 + 0.1 if _u(g) < 0.5 else (wave + 1) / 2


def outlier_batch(k: int, size: int, g: torch.Generator) -> torch.Tensor:
    """(k, 1, size, size) generated non-MRI images in [0, 1], drawn from `g`."""
    out = torch.empty(k, 1, size, size)
    for i in range(k):
        kind = KINDS[int(torch.randint(len(KINDS), (), generator=g))]
        if kind == "texture":
            img = _texture(size, g)
        elif kind == "texture_in_ellipse":
            img = _texture(size, g) * _ellipse(size, g)
        elif kind == "shapes":
            img = _shapes(size, g)
        else:
            img = _pattern(size, g)
        out[i, 0] = img.clamp(0, 1) ** _u(g, 0.5, 2.0)  # a random grey-level curve
    return out


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits against the uniform distribution over the classes (the OE loss)."""
    return -torch.log_softmax(logits, dim=1).mean(dim=1).mean()
