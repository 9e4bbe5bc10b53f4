"""Batched data augmentation for MRI slices, on tensors, driven by an explicit torch.Generator.

Chosen to generalise beyond one dataset's acquisition rather than to fit it: slices arrive in any
orientation (axial, coronal, sagittal; radiological or neurological left-right; flipped vertically by
some viewers), at any zoom and with any windowing, sequence contrast and noise. So: flips on both axes,
rotations up to 180 degrees, scale and shift, gamma / contrast / brightness jitter, blur and noise. Everything runs on the whole batch at once
(affine_grid + grid_sample), which costs about 10% of a training step at 64x64 on this CPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment(x: torch.Tensor, g: torch.Generator, strength: float = 1.0, masks: torch.Tensor | None = None,
            turn: float = 0.1):
    """(B, 1, S, S) in [0, 1] -> augmented batch of the same shape, values in [0, 1].

    masks: tumour masks (B, 1, S, S) that get the same geometry (no intensity changes); then returns
    (images, masks). The random draws are the same with or without masks.

    A share `turn` (10%) of the images turn by any angle (up to 180 degrees) and 10% flip vertically; the
    rest turn by at most 10 degrees. Rotating every image by any angle cost 25 points of validation accuracy
    after 6 epochs on 2,000 Kaggle images (0.53 vs 0.78 with flips alone), and a quarter of images still
    halved phantom accuracy after 10 epochs; full rotations are kept, rarely, for robustness to odd
    orientations without making the whole task rotation-invariant.
    """
    b = x.shape[0]
    # --- geometry: one affine matrix per image (flip x, flip y, rotate, scale, shift)
    big = torch.rand(b, generator=g) < turn
    angle = torch.where(big, _u(b, -math.pi, math.pi, g), _u(b, -math.pi / 18, math.pi / 18, g)) * strength
    scale = torch.exp(_u(b, math.log(0.9), math.log(1.1), g) * strength)
    flip_x = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(b, generator=g) < 0.1, -1.0, 1.0)
    shift = _u(2 * b, -0.06, 0.06, g).view(b, 2) * strength
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos * flip_x
    theta[:, 0, 1] = -sin * flip_y
    theta[:, 1, 0] = sin * flip_x
    theta[:, 1, 1] = cos * flip_y
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks is not None:
        masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # --- intensity: gamma, contrast around the mean, brightness (other scanners, sequences, windows)
    gamma = torch.exp(_u(b, -0.3, 0.3, g) * strength).view(b, 1, 1, 1)
    x = x.clamp(0, 1) ** gamma
    contrast = _u(b, 0.85, 1.15, g).view(b, 1, 1, 1)
    mean = x.mean((2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + _u(b, -0.05, 0.05, g).view(b, 1, 1, 1) * strength
    # --- blur a fifth of the images (3x3 binomial kernel), add noise to 30%
    blur = (torch.rand(b, generator=g) < 0.2).view(b, 1, 1, 1)
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).view(1, 1, 3, 3) / 16
    x = torch.where(blur, F.conv2d(x, k, padding=1), x)
    sigma = _u(b, 0.0, 0.03, g).view(b, 1, 1, 1) * (torch.rand(b, generator=g) < 0.3).view(b, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1) if masks is None else (x.clamp(0, 1), masks.clamp(0, 1))
