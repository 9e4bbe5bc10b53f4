"""Batched data augmentation for MRI slices, on tensors, driven by an explicit torch.Generator.

Chosen to generalise beyond one dataset's acquisition rather than to fit it: slices arrive in any
orientation (axial, coronal, sagittal; radiological or neurological left-right; flipped vertically by
some viewers), at any zoom and with any windowing, sequence contrast and noise. So: flips on both axes,
rotations up to 180 degrees, scale and shift, grey-level curves (narrow windows, histogram equalisation,
random monotone curves), skull stripping, a T2-like rendering of the tumour from its mask (the Kaggle tumour
classes are contrast-enhanced T1, its no-tumour class mostly T2 and FLAIR), gamma / contrast / brightness
jitter, blur and noise. Everything runs on the whole
batch at once (affine_grid + grid_sample), which costs about 10% of a training step at 64x64 on this CPU;
the curves add about 3 ms per batch of 64 at 30% (2 threads; throwaway timing, 2026-11-27).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _head_ranks(flat: torch.Tensor, order: torch.Tensor, fg: float = 0.08) -> torch.Tensor:
    """Histogram-equalise each row's head: pixels above `fg` get their rank among them, spread over (fg, 1].

    flat (B, N) and its ascending argsort `order`; the background (at or below `fg`) is left as it is.
    Ties are ranked in index order (a scatter; searchsorted for mean ranks cost 4x more per batch here)."""
    b, n = flat.shape
    rank = torch.empty_like(flat).scatter_(1, order, torch.arange(n, dtype=flat.dtype).expand(b, n).contiguous())
    n_bg = (flat <= fg).sum(1, keepdim=True)
    n_head = (n - n_bg).clamp(min=1)
    return torch.where(flat > fg, fg + (1 - fg) * (rank - n_bg + 0.5) / n_head, flat)


def equalize_batch(x: torch.Tensor, fg: float = 0.08) -> torch.Tensor:
    """`data.equalize_head` of each image of a batch (B, 1, S, S): the head's pixels (above `fg`) replaced by
    their mean rank among them, spread over (fg, 1]; ties share a value. For `Preprocess.equalize`, after the
    intensity augmentation, so training sees the inputs prediction will."""
    b = x.shape[0]
    flat = x.reshape(b, -1).contiguous()
    srt = flat.sort(dim=1).values
    n_bg = (flat <= fg).sum(1, keepdim=True)
    n = (flat.shape[1] - n_bg).clamp(min=1).to(flat.dtype)
    lo = torch.searchsorted(srt, flat, right=False)
    hi = torch.searchsorted(srt, flat, right=True)
    r = (lo + hi - 1).to(flat.dtype) * 0.5 - n_bg.to(flat.dtype)
    v = fg + (1 - fg) * ((r + 0.5) / n)
    return torch.where(flat > fg, v, flat).view_as(x)


def _contrast_curves(x: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    """Give a `share` of the images another monotone intensity mapping, one of three kinds in equal parts.

    Scanners, sequences and exports map tissue to grey levels differently, and the Kaggle no-tumour source
    differs from the tumour source in exactly that; a model that reads tumours from grey levels calls
    re-windowed tumour scans "no tumour" (docs/experiments.md, "grey-level curves"). The kinds: a narrow window (saturate
    above the 70th-98th percentile of the head and rescale), histogram equalisation of the head blended
    with the image, and a random piecewise-linear monotone curve (4 segments, random slopes: gamma-like,
    S-shaped, or flat at either end).
    """
    b = x.shape[0]
    pick = torch.rand(b, generator=g) < share
    kind = torch.randint(0, 3, (b,), generator=g)
    q = _u(b, 0.70, 0.98, g)
    blend = _u(b, 0.5, 1.0, g).view(b, 1)
    slopes = torch.rand(b, 4, generator=g) ** 2 + 0.02  # increments of the curve over [0, .25, .5, .75, 1]
    idx = pick.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    kind, q, blend, slopes = kind[idx], q[idx], blend[idx], slopes[idx]
    flat = x[idx].reshape(idx.numel(), -1).clamp(0, 1)  # (P, S*S), the picked images
    m, n = flat.shape
    srt, order = flat.sort(dim=1)
    # narrow window: the q-quantile of head pixels (x > 0.08) becomes white
    n_bg = (flat <= 0.08).sum(1)
    at = (n_bg + (q * (n - n_bg - 1).clamp(min=0)).long()).clamp(max=n - 1)
    top = srt.gather(1, at.view(m, 1)).clamp(min=0.1)  # (P, 1); a headless image keeps most of its range
    win = (flat / top).clamp(0, 1)
    eq = blend * _head_ranks(flat, order) + (1 - blend) * flat
    knots = torch.cat([torch.zeros(m, 1), slopes.cumsum(1) / slopes.sum(1, keepdim=True)], 1)  # (P, 5)
    pos = flat * 4  # segment index and position within it
    seg = pos.floor().clamp(max=3).long()
    y0, y1 = knots.gather(1, seg), knots.gather(1, seg + 1)
    curve = y0 + (y1 - y0) * (pos - seg)
    k = kind.view(m, 1)
    out = torch.where(k == 0, win, torch.where(k == 1, eq, curve))
    x = x.clone()
    x[idx] = out.clamp(0, 1).view(m, *x.shape[1:])
    return x


def _sequence_swap(x: torch.Tensor, share: float, g: torch.Generator, fg: float = 0.08) -> torch.Tensor:
    """Give a `share` of the images a T2-like, non-monotone grey-level mapping of the head.

    The Kaggle tumour classes are contrast-enhanced T1 slices (dark fluid) while its no-tumour class is mostly
    T2 and FLAIR (bright fluid): a model can learn "bright fluid, no tumour" and call T2 tumour scans "no
    tumour" (README, "other sequences"). The curve is an N over the head's grey levels v in (fg, 1]: rising
    from fg to `hi` at v = a (bone and partial volume stay dark at the rim, fluid turns bright), falling to
    `lo` at v = c (white matter dark, grey matter above it, as in T2), rising again to `top` at v = 1 (the
    enhancing tumour, fat and vessels mid to bright). a, c, hi, lo, top are drawn per image; the background
    (v <= fg) stays as it is.
    """
    b = x.shape[0]
    pick = torch.rand(b, generator=g) < share
    knots = torch.stack(_n_knots(b, g), 1)
    idx = pick.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    v = x[idx].clamp(0, 1)
    x = x.clone()
    x[idx] = _n_curve(v, *(knots[idx, i].view(-1, 1, 1, 1) for i in range(5)), fg=fg)
    return x


def _n_knots(b: int, g: torch.Generator) -> list[torch.Tensor]:
    """The knots a, c, hi, lo, top of `_n_curve` for `b` images, drawn in that order."""
    return [_u(b, 0.15, 0.3, g), _u(b, 0.45, 0.65, g), _u(b, 0.75, 1.0, g), _u(b, 0.15, 0.35, g),
            _u(b, 0.5, 0.9, g)]


def _n_curve(v: torch.Tensor, a: torch.Tensor, c: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor,
             top: torch.Tensor, fg: float) -> torch.Tensor:
    """The N-shaped map of `_sequence_swap` on the head's pixels (v > fg): fg -> hi rising up to v = a,
    falling to lo at v = c, rising to top at v = 1; the background (v <= fg) as it is."""
    rise = fg + (hi - fg) * (v - fg) / (a - fg)
    fall = hi + (lo - hi) * (v - a) / (c - a)
    again = lo + (top - lo) * (v - c) / (1 - c)
    return torch.where(v > fg, torch.where(v < a, rise, torch.where(v < c, fall, again)), v)


def _t2_render(x: torch.Tensor, masks: torch.Tensor | None, share: float, g: torch.Generator,
               fg: float = 0.08) -> torch.Tensor:
    """Give a `share` of the images a T2-like look that also changes the tumour and the tissue around it.

    `_sequence_swap` alone remaps grey levels, so a contrast-enhanced tumour (bright on T1) stays a bright
    blob and its oedema stays dark; on a T2 slice the tumour is a mid-to-bright mass often ringed by bright
    oedema, at about the grey level of the fluid (benchmarks/kaggle_non_t1_tumours.csv, by eye). With the
    tumour mask (where one is known; no-tumour masks are empty) the picked images get: the N-shaped curve of
    `_sequence_swap` on the head; the tumour re-filled at a level `t` in 0.55-0.95 keeping a part of its
    texture; and, on a ring 1-4 px wide (of 64) around it, oedema at a level `e` in 0.5-0.9 blended in with a
    weight in 0-1 (some meningiomas have none). Without masks it is `_sequence_swap` alone.
    """
    b = x.shape[0]
    pick = torch.rand(b, generator=g) < share
    knots = torch.stack([*_n_knots(b, g),  # a, c, hi, lo, top of the curve
                         _u(b, 0.55, 0.95, g), _u(b, 0.2, 0.6, g),  # tumour level, texture kept
                         _u(b, 0.5, 0.9, g), torch.rand(b, generator=g), _u(b, 1.0, 4.99, g)], 1)  # oedema
    idx = pick.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    v = x[idx].clamp(0, 1)
    a, c, hi, lo, top, t_lvl, tex, e_lvl, e_w, ring = (knots[idx, i].view(-1, 1, 1, 1) for i in range(10))
    out = _n_curve(v, a, c, hi, lo, top, fg)
    if masks is not None:
        m = masks[idx].clamp(0, 1)  # (P, 1, S, S)
        head = (v > fg).float()
        # the tumour's own texture around its mean, scaled down, on top of the new level
        area = m.sum((2, 3), keepdim=True).clamp(min=1e-6)
        mean_t = (v * m).sum((2, 3), keepdim=True) / area
        tumour = (t_lvl + tex * (v - mean_t)).clamp(0, 1)
        out = out * (1 - m) + tumour * m
        # oedema: the mask dilated by `ring` px (k 3x3 dilations = one (2k+1)-square one), minus the mask
        width = ring.long().clamp(1, 4)
        grown = dil = m
        for k in range(1, 5):
            grown = F.max_pool2d(grown, 3, 1, 1)
            dil = torch.where(width == k, grown, dil)
        halo = F.avg_pool2d(dil, 3, 1, 1)
        halo = (halo - m).clamp(0, 1) * head * e_w
        out = out * (1 - halo) + e_lvl * halo
    x = x.clone()
    x[idx] = out.clamp(0, 1)
    return x


def head_depth(x: torch.Tensor, fg: float = 0.08, steps: int = 8) -> torch.Tensor:
    """(P, 1, S, S) -> how many 3x3 erosions each pixel survives (0 outside the head and on its outline, at
    most `steps`).

    The head is everything not reachable from the frame's edge through background (<= fg), so dark fluid,
    ventricles and necrotic cores inside it count as head (a flood fill by repeated 3x3 dilation)."""
    m = x > fg
    edge = torch.zeros_like(m)
    edge[..., 0, :] = edge[..., -1, :] = edge[..., :, 0] = edge[..., :, -1] = True
    reach = edge & ~m
    for i in range(2 * max(x.shape[-2:])):
        grown = (F.max_pool2d(reach.float(), 3, 1, 1) > 0) & ~m
        if i % 4 == 3 and torch.equal(grown, reach):
            break
        reach = grown
    cur = (~reach).float()
    depth = torch.zeros_like(cur)
    for _ in range(steps):  # erosion with the outside of the frame as background
        cur = 1 - F.max_pool2d(F.pad(1 - cur, (1, 1, 1, 1), value=1.0), 3, 1)
        depth += cur
    return depth


def augment(x: torch.Tensor, g: torch.Generator, strength: float = 1.0, masks: torch.Tensor | None = None,
            turn: float = 0.1, contrast: float = 0.0, sequence: float = 0.0, strip: float = 0.0,
            depth: torch.Tensor | None = None, t2: float = 0.0):
    """(B, 1, S, S) in [0, 1] -> augmented batch of the same shape, values in [0, 1].

    masks: tumour masks (B, 1, S, S) that get the same geometry (no intensity changes); then returns
    (images, masks). The random draws are the same with or without masks.
    contrast: the share of images given a grey-level curve (_contrast_curves); 0 draws nothing.
    sequence: the share of images given a non-monotone, sequence-like mapping (_sequence_swap); 0 draws nothing.
    t2: the share of images given a T2-like look that also re-fills the tumour and adds oedema around it, from
      `masks` (_t2_render; without masks the curve alone); 0 draws nothing.
    strip: the share of images "skull-stripped": everything but the head's inner part (2-7 px of the 64 px
      frame shaved off its outline) set to background, then zoomed so the rest fills the frame again, as a
      skull-stripped scan cropped to the brain would look (BraTS-style data); 0 draws nothing.
    depth: `head_depth(x)` computed beforehand (train.py does it once for the whole training set: per batch,
      the flood fill took about 57 ms per 32 images at 1 thread, a throwaway timing); None computes it here.

    A share `turn` (10%) of the images turn by any angle (up to 180 degrees) and 10% flip vertically; the
    rest turn by at most 10 degrees. Rotating every image by any angle cost 25 points of validation accuracy
    after 6 epochs on 2,000 Kaggle images (0.53 vs 0.78 with flips alone), and a quarter of images still
    halved phantom accuracy after 10 epochs; full rotations are kept, rarely, for robustness to odd
    orientations without making the whole task rotation-invariant.
    """
    b = x.shape[0]
    zoom = torch.ones(b)
    if strip > 0:  # --- skull stripping (no draws when 0: old runs replay exactly)
        pick = torch.rand(b, generator=g) < strip
        depth_px = _u(b, 2.0, 7.0, g)
        idx = pick.nonzero().squeeze(1)
        if idx.numel():
            d = head_depth(x[idx]) if depth is None else depth[idx]
            keep = (d >= depth_px[idx].view(-1, 1, 1, 1)).float()
            x = x.clone()
            x[idx] = x[idx] * keep
            if masks is not None:
                masks = masks.clone()
                masks[idx] = masks[idx] * keep
            side = 0.92 * x.shape[-1]  # the head's extent in a preprocessed frame (4% margin each side)
            zoom[idx] = side / (side - 2 * depth_px[idx])
    # --- geometry: one affine matrix per image (flip x, flip y, rotate, scale, shift)
    big = torch.rand(b, generator=g) < turn
    angle = torch.where(big, _u(b, -math.pi, math.pi, g), _u(b, -math.pi / 18, math.pi / 18, g)) * strength
    scale = torch.exp(_u(b, math.log(0.9), math.log(1.1), g) * strength) * zoom
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
    # --- intensity: another sequence's look for a `sequence` share (no draws when 0: old runs replay exactly)
    if sequence > 0:
        x = _sequence_swap(x, sequence, g)
    if t2 > 0:  # (no draws when 0: old runs replay exactly)
        x = _t2_render(x, masks, t2, g)
    # --- intensity: other monotone mappings for a `contrast` share (no draws when 0: old runs replay exactly)
    if contrast > 0:
        x = _contrast_curves(x, contrast, g)  # clamps the images it changes; the gamma below clamps all
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
