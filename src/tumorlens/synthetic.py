"""Synthetic brain-MRI phantoms with class-typical lesions and their exact masks.

Why: the test-suite needs image data that looks enough like the Kaggle brain-tumour MRI slices to exercise
loading, preprocessing, training, Grad-CAM and the leakage audit, and `tumorlens demo` needs a small dataset
it can ship without downloading anything. Real scans cannot be bundled, so they are simulated.

Each slice is an axial-looking T1 phantom: dark background, an elliptical head (random axes, rotation and
offset) with a bright scalp/skull ring, a dark CSF band, brain tissue with gyri-like grey/white contrast and
smooth texture and sulci, two crescent ventricles, a few bright vessel dots, a smooth multiplicative bias
field, Rician-like noise (magnitude of a complex signal with Gaussian-like noise in both channels, so the
background is Rayleigh-distributed as in magnitude MRI) and a random gamma and gain. One lesion per class:

* ``glioma``: irregular (lobulated) intra-axial mass inside the parenchyma, bright enhancing rim, dark
  necrotic core, faint surrounding oedema (the oedema is not part of the mask);
* ``meningioma``: bright, homogeneous, well-circumscribed, roughly hemispherical extra-axial mass whose flat
  side lies on the inner skull surface, at a random angle (never at the skull base below the sella);
* ``pituitary``: small bright round mass on the midline in the sella region, in the lower-central brain just
  above the skull base;
* ``notumor``: no lesion; the mask is empty.

The mask is exactly the set of pixels whose lesion weight is >= 0.5 (the image uses the same weight,
anti-aliased). Lesion sizes are random within class-typical ranges, and the random gain and gamma dominate
the image mean, so the classes cannot be told apart by brightness alone.

Files written by `make_dataset`:

* images: ``<out_dir>/<class>/<class>_<i>.png`` (or under ``Training/`` and ``Testing/``);
* masks: ``<out_dir.parent>/<out_dir.name>_masks/<same relative path, .png>`` -- *beside* the dataset root,
  not inside it, because the dataset loader treats every subfolder of the root as a class or split folder;
* manifest: ``<out_dir.parent>/<out_dir.name>_manifest.csv`` with columns ``path`` (relative to the
  dataset root, '/'-separated, as `data.Entry.path`), ``label``, ``mask_path`` (relative to the manifest's
  folder), ``duplicate_of`` (the path of the planted duplicate's source, else empty) and ``kind``
  (``original`` or one of `DUPLICATE_KINDS`).

Everything is deterministic: image *i* of class *c* is drawn from ``np.random.default_rng([seed, c, i])``,
so the same seed gives byte-identical files and `make_arrays` sees the same slices as `make_dataset`
(on one numpy build: vectorised float32 sin/atan2 may differ in the last bit between builds or CPUs).
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .config import CLASSES, TumorlensError
from .fileio import atomic_write_bytes

log = logging.getLogger(__name__)

DUPLICATE_KINDS: tuple[str, ...] = ("reencoded", "resized", "mirrored", "brightness")
_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg"}
_DUP_STREAM = 1_000_003  # seed-sequence key of the duplicate-planting stream (no class index collides)


@dataclass(frozen=True)
class PhantomSlice:
    """One phantom slice with the anatomy masks the tests use to check lesion placement."""

    image: np.ndarray  # (size, size) uint8
    mask: np.ndarray  # (size, size) bool, the lesion pixels
    head: np.ndarray  # (size, size) bool, everything inside the outer head contour
    skull: np.ndarray  # (size, size) bool, the bright scalp/skull ring
    brain: np.ndarray  # (size, size) bool, the brain parenchyma (inside the CSF band)
    label: str


# ------------------------------------------------------------------------------------------ helpers
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: X as a (1, size) row, Y as a (size, 1) column."""
    g = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
    return g[None, :], g[:, None]


def _smooth_field(rng: np.random.Generator, shape: int | tuple[int, int], cells: int, amp: float) -> np.ndarray:
    """A smooth random field: a cells x cells Gaussian grid, bicubically upsampled (amplitude ~amp)."""
    h, w = (shape, shape) if isinstance(shape, int) else shape
    g = (rng.standard_normal((cells, cells)) * amp).astype(np.float32)
    return np.array(Image.fromarray(g).resize((w, h), Image.BICUBIC), dtype=np.float32)


def _ramp(d: np.ndarray, eps: float) -> np.ndarray:
    """Anti-aliased inside weight from a signed distance `d` (> 0 inside), 0.5 on the boundary."""
    return np.clip(d * (1.0 / eps) + 0.5, 0.0, 1.0)


def _lerp(a, b, w):
    """Blend from a to b by weight w (0: a, 1: b)."""
    return a + (b - a) * w


def _radial_profile(rng: np.random.Generator, n_harm: int, amp: float, kmin: int = 2) -> tuple:
    """Random Fourier boundary perturbation r(psi) = 1 + sum c_k cos(k psi + p_k), |sum| <= amp."""
    ks = np.arange(kmin, kmin + n_harm, dtype=np.float32)
    c = rng.uniform(0.3, 1.0, n_harm).astype(np.float32) / ks ** 0.7
    c *= amp / c.sum()
    p = rng.uniform(0, 2 * np.pi, n_harm).astype(np.float32)
    return ks, c, p


def _eval_profile(psi: np.ndarray, prof: tuple) -> np.ndarray:
    ks, c, p = prof
    out = np.ones_like(psi)
    for k, ck, pk in zip(ks, c, p):
        out += ck * np.cos(k * psi + pk)
    return out


# ------------------------------------------------------------------------------------------ phantom
def _box(S: int, xc: float, yc: float, r: float) -> tuple[slice, slice]:
    """Pixel window covering the disc of radius r (normalised units) around image point (xc, yc)."""
    px = 2.0 / S
    c0, c1 = int(np.floor((xc - r + 1.0) / px)) - 1, int(np.ceil((xc + r + 1.0) / px)) + 1
    r0, r1 = int(np.floor((yc - r + 1.0) / px)) - 1, int(np.ceil((yc + r + 1.0) / px)) + 1
    return slice(max(r0, 0), max(min(r1, S), 0)), slice(max(c0, 0), max(min(c1, S), 0))


def _noise(rng: np.random.Generator, S: int) -> np.ndarray:
    """Unit-variance, zero-mean, Gaussian-like noise: a sum of two uniforms, ~3x faster than normals."""
    n = rng.random((S, S), dtype=np.float32)
    n += rng.random((S, S), dtype=np.float32)
    n -= np.float32(1.0)
    n *= np.float32(np.sqrt(6.0))  # the sum of 2 U(0,1) has variance 1/6
    return n


def make_phantom(label: str, rng: np.random.Generator, size: int = 256) -> PhantomSlice:
    """Draw one phantom slice of class `label` from `rng`, with its lesion and anatomy masks.

    All geometry is in normalised coordinates ([-1, 1] across the frame) so that the anatomy, and the
    lesion size ranges, do not depend on `size`; only anti-aliasing widths are set in pixels. Local
    structures (ventricles, lesions, dots) are drawn inside small windows, which keeps a 256-px slice
    at a few milliseconds.
    """
    if label not in CLASSES:
        raise TumorlensError(f"unknown class {label!r} (expected {', '.join(CLASSES)})")
    if size < 32:
        raise TumorlensError(f"phantom size must be at least 32 pixels, got {size}")
    S = int(size)
    px = 2.0 / S  # one pixel in normalised units
    f32 = np.float32
    X, Y = _grid(S)

    # ---- head geometry: ellipse with semi-axes a (left-right) and b (front-back), rotated, offset
    a = float(rng.uniform(0.66, 0.78))
    b = float(rng.uniform(0.80, 0.90))
    rot = float(rng.uniform(-0.15, 0.15))
    cx = float(rng.uniform(-0.05, 0.05))
    cy = float(rng.uniform(-0.04, 0.04))
    cs, sn = np.cos(rot), np.sin(rot)
    # work inside the head's bounding box only; the background is filled in with noise at the end
    hx, hy = np.hypot(a * cs, b * sn), np.hypot(a * sn, b * cs)
    win = (slice(_box(S, cx, cy - hy, 0.0)[0].start, _box(S, cx, cy + hy, 0.0)[0].stop),
           slice(_box(S, cx - hx, cy, 0.0)[1].start, _box(S, cx + hx, cy, 0.0)[1].stop))
    r_off, c_off = win[0].start, win[1].start
    X, Y = X[:, win[1]], Y[win[0], :]
    H, W = Y.shape[0], X.shape[1]

    def box(xc: float, yc: float, r: float) -> tuple[slice, slice]:
        """`_box` in window coordinates."""
        rs, cs_ = _box(S, xc, yc, r)
        return (slice(min(max(rs.start - r_off, 0), H), min(max(rs.stop - r_off, 0), H)),
                slice(min(max(cs_.start - c_off, 0), W), min(max(cs_.stop - c_off, 0), W)))

    dx, dy = X - f32(cx), Y - f32(cy)
    u = f32(cs) * dx + f32(sn) * dy  # head coordinates: u to the side, v towards the skull base (down)
    v = f32(cs) * dy - f32(sn) * dx

    def to_image(pu: float, pv: float) -> tuple[float, float]:
        return cx + cs * pu - sn * pv, cy + sn * pu + cs * pv

    un, vn = u * f32(1 / a), v * f32(1 / b)
    rho = np.sqrt(un * un + vn * vn)  # elliptical radius: 1 on the outer head contour
    phi = np.arctan2(vn, un)
    eps_r = 1.2 * px / min(a, b)  # anti-aliasing width in rho units

    r_skull = float(rng.uniform(0.87, 0.905))  # inner surface of the bright ring
    r_brain0 = r_skull - float(rng.uniform(0.02, 0.035))
    k_b = float(rng.integers(20, 34))
    r_brain = np.sin(phi * f32(k_b) + f32(rng.uniform(0, 6.3)))
    r_brain *= f32(0.006)
    r_brain += f32(r_brain0)

    # ---- tissue intensities (T1-like: white > grey > CSF), randomised per slice
    wm = float(rng.uniform(0.66, 0.76))
    gm = wm * float(rng.uniform(0.68, 0.8))
    csf = float(rng.uniform(0.08, 0.16))
    ring_i = float(rng.uniform(0.85, 1.05))

    w_head = _ramp(1.0 - rho, eps_r)
    w_inner = _ramp(r_skull - rho, eps_r)
    w_brain = _ramp(r_brain - rho, eps_r)

    # bright ring (scalp fat and marrow) with a darker bone line in it
    ring = _smooth_field(rng, (H, W), 10, 0.07 * ring_i)
    ring += f32(ring_i)
    ring *= 1.0 - 0.45 * _ramp(0.018 - np.abs(rho - f32((r_skull + 1.0) * 0.5 + 0.015)), eps_r)
    img = w_head * ring
    img = _lerp(img, f32(csf), w_inner)

    # gyri: the white-matter boundary undulates with angle, grey matter fills the cortex band
    k1, k2 = float(rng.integers(14, 22)), float(rng.integers(5, 9))
    p1 = float(rng.uniform(0, 6.3))
    ph1 = phi * f32(k1)
    ph1 += f32(p1)
    r_wm = np.sin(ph1)
    r_wm *= f32(-0.0225)
    r_wm -= f32(0.025) * np.sin(phi * f32(k2) + f32(rng.uniform(0, 6.3)))
    r_wm += f32(r_brain0 - rng.uniform(0.09, 0.13) - 0.0225)
    w_wm = _ramp(r_wm - rho, 2.5 * eps_r)
    tissue = w_wm * f32(wm - gm)
    tissue += f32(gm)
    tex = _smooth_field(rng, (H, W), 6, 0.05)
    tex += _smooth_field(rng, (H, W), 22, 0.025)
    tex += f32(1.0)
    tissue *= tex

    # deep grey nuclei lateral to the ventricles
    vs = float(rng.uniform(0.75, 1.3))  # ventricle size (atrophy / normal variation)
    for side in (-1.0, 1.0):
        pu, pv = side * a * 0.27 * vs ** 0.3, b * 0.02
        sl = box(*to_image(pu, pv), 0.17 * b + 2 * px)
        nu = (u[sl] - f32(pu)) * f32(1 / (0.10 * a))
        nv = (v[sl] - f32(pv)) * f32(1 / (0.16 * b))
        e = np.sqrt(nu * nu + nv * nv)
        t = tissue[sl]
        tissue[sl] = _lerp(t, t * f32(gm / wm * 1.05), _ramp(1.0 - e, 0.25) * w_wm[sl])
    # sulci: thin dark CSF clefts from the surface down between the gyri (where the cortex is thickest)
    ph1 -= f32(np.pi / 2)
    ph1 += f32(0.35) * np.sin(rho * f32(rng.uniform(35, 60)) + phi * f32(3.0) + f32(rng.uniform(0, 6.3)))
    ph1 *= f32(1 / (2 * np.pi))
    ph1 -= np.round(ph1)  # phase distance to the sulcus, in turns
    arc = np.abs(ph1)
    arc *= rho
    arc *= f32(2 * np.pi * 0.5 * (a + b) / k1)  # ... as a distance in normalised units
    depth = np.sin(phi * f32(rng.integers(3, 7)) + f32(rng.uniform(0, 6.3)))
    depth *= f32(-0.02)
    depth += rho
    depth -= r_wm
    depth = np.clip(depth * f32(1 / 0.03), 0.0, 0.75)
    tissue = _lerp(tissue, f32(csf * 1.6), _ramp(f32(0.6 * px) - arc, px) * depth)
    img = _lerp(img, tissue, w_brain)

    # interhemispheric fissure: a thin dark midline line in front of and behind the ventricles
    half = b * r_brain0
    xa, xb = to_image(0.0, -half)[0], to_image(0.0, half)[0]
    sl = (slice(0, H), slice(box(min(xa, xb), cy, 2 * px)[1].start, box(max(xa, xb), cy, 2 * px)[1].stop))
    fis = _ramp(f32(0.9 * px) - np.abs(u[sl]), 0.9 * px) * (np.abs(v[sl]) > f32(0.3 * b)) * w_brain[sl]
    img[sl] = _lerp(img[sl], f32(csf * 1.5), 0.7 * fis)

    # ventricles: two crescents, concave laterally (the caudate heads indent them), septum between
    vdv = float(rng.uniform(-0.10, 0.02)) * b
    for side in (-1.0, 1.0):
        ax_ = 0.06 * vs * float(rng.uniform(0.85, 1.15))
        ay_ = 0.26 * vs * float(rng.uniform(0.9, 1.1))
        du = side * (ax_ + float(rng.uniform(0.008, 0.02)))
        tilt = side * float(rng.uniform(-0.05, 0.2))
        sl = box(*to_image(du, vdv), max(ax_, ay_) + 2 * px)
        c2, s2 = f32(np.cos(tilt)), f32(np.sin(tilt))
        lu, lv = u[sl] - f32(du), v[sl] - f32(vdv)
        ru, rv = c2 * lu + s2 * lv, c2 * lv - s2 * lu
        e1 = np.sqrt((ru * f32(1 / ax_)) ** 2 + (rv * f32(1 / ay_)) ** 2)
        e2 = np.sqrt(((ru - f32(side * 1.25 * ax_)) * f32(1 / (0.85 * ax_))) ** 2
                     + (rv * f32(1 / (0.62 * ay_))) ** 2)
        w_v = np.minimum(_ramp((1.0 - e1) * f32(ax_), px), _ramp((e2 - 1.0) * f32(ax_), px))
        img[sl] = _lerp(img[sl], f32(csf), w_v)

    # bright vessel dots (flow / fat), kept away from the sella so they do not mimic a pituitary mass
    for _ in range(int(rng.integers(0, 4))):
        while True:
            pu, pv = float(rng.uniform(-0.7, 0.7)) * a, float(rng.uniform(-0.7, 0.45)) * b
            if (pu / a) ** 2 + (pv / b) ** 2 < 0.6 ** 2:
                break
        rr = float(rng.uniform(0.010, 0.022))
        sl = box(*to_image(pu, pv), rr + 2 * px)
        d = f32(rr) - np.sqrt((u[sl] - f32(pu)) ** 2 + (v[sl] - f32(pv)) ** 2)
        img[sl] = _lerp(img[sl], f32(wm * rng.uniform(1.15, 1.35)), _ramp(d, px) * w_brain[sl])

    # ---- lesion
    mask = np.zeros((H, W), dtype=bool)
    if label == "glioma":
        R = float(rng.uniform(0.11, 0.24))
        while True:  # centre deep enough that the lobulated outline stays inside the parenchyma
            lu, lv = float(rng.uniform(-0.6, 0.6)) * a, float(rng.uniform(-0.6, 0.5)) * b
            if np.sqrt((lu / a) ** 2 + (lv / b) ** 2) + 1.4 * R / min(a, b) < r_brain0 - 0.04:
                break
        amp = float(rng.uniform(0.18, 0.32))
        o_w = float(rng.uniform(0.25, 0.6))  # oedema reach, in lesion radii
        sl = box(*to_image(lu, lv), R * (1 + amp) * (1 + o_w) + 2 * px)
        du_, dv_ = u[sl] - f32(lu), v[sl] - f32(lv)
        d = np.sqrt(du_ * du_ + dv_ * dv_)
        psi = np.arctan2(dv_, du_)
        edge = f32(R) * _eval_profile(psi, _radial_profile(rng, 6, amp))
        w_les = _ramp(edge - d, px) * (w_brain[sl] > 0.5)
        s = d / edge
        core_r = f32(rng.uniform(0.35, 0.65)) * _eval_profile(psi, _radial_profile(rng, 5, 0.25))
        w_core = _ramp((core_r - s) * f32(R), 1.5 * px)
        h, w = d.shape
        rim_i = f32(wm * rng.uniform(1.3, 1.6)) * (1.0 + _smooth_field(rng, (h, w), 8, 0.12))
        core_i = f32(rng.uniform(0.14, 0.3)) * (1.0 + _smooth_field(rng, (h, w), 8, 0.15))
        les_i = _lerp(rim_i, core_i, w_core)
        oedema = np.clip((1.0 - s) * f32(1 / o_w) + 1.0, 0.0, 1.0) * (s >= 1.0) * w_brain[sl]
        t = img[sl] * (1.0 - f32(rng.uniform(0.1, 0.22)) * oedema)
        img[sl] = _lerp(t, les_i, w_les)
        mask[sl] = w_les >= 0.5
    elif label == "meningioma":
        R = float(rng.uniform(0.11, 0.24))
        while True:  # anywhere on the convexity, but not on the skull base below the sella
            ang = float(rng.uniform(-np.pi, np.pi))
            if abs(ang - np.pi / 2) > 0.5:
                break
        # point on the inner skull surface, moved a little along the inward normal
        su, sv = a * r_skull * np.cos(ang), b * r_skull * np.sin(ang)
        nu_, nv_ = -np.cos(ang) / a, -np.sin(ang) / b
        nn = np.hypot(nu_, nv_)
        shift = R * float(rng.uniform(-0.1, 0.3))
        lu, lv = su + shift * nu_ / nn, sv + shift * nv_ / nn
        amp = float(rng.uniform(0.03, 0.08))
        sl = box(*to_image(lu, lv), R * (1 + amp) + 4 * px)
        du_, dv_ = u[sl] - f32(lu), v[sl] - f32(lv)
        d = np.sqrt(du_ * du_ + dv_ * dv_)
        psi = np.arctan2(dv_, du_)
        edge = f32(R) * _eval_profile(psi, _radial_profile(rng, 3, amp, kmin=3))
        wi = w_inner[sl]
        w_les = np.minimum(_ramp(edge - d, px), wi)
        # a thin dark CSF cleft around the mass (extra-axial sign), then the bright mass itself
        t = _lerp(img[sl], f32(csf * 1.3), _ramp(edge + f32(2.5 * px) - d, px) * wi)
        h, w = d.shape
        les_i = f32(wm * rng.uniform(1.3, 1.55)) * (1.0 + _smooth_field(rng, (h, w), 6, 0.04))
        img[sl] = _lerp(t, les_i, w_les)
        mask[sl] = w_les >= 0.5
    elif label == "pituitary":
        R = float(rng.uniform(0.05, 0.09))
        lu = float(rng.normal(0.0, 0.008))
        lv = b * r_brain0 * float(rng.uniform(0.55, 0.70))
        ex = float(rng.uniform(1.0, 1.3))  # a little wider than tall
        sl = box(*to_image(lu, lv), R * ex + 4 * px)
        du_, dv_ = (u[sl] - f32(lu)) * f32(1 / ex), v[sl] - f32(lv)
        d = np.sqrt(du_ * du_ + dv_ * dv_)
        w_les = _ramp(f32(R) - d, px)
        h, w = d.shape
        les_i = f32(wm * rng.uniform(1.3, 1.55)) * (1.0 + _smooth_field(rng, (h, w), 6, 0.04))
        t = _lerp(img[sl], f32(csf * 1.3), _ramp(f32(R + 2.0 * px) - d, px))
        img[sl] = _lerp(t, les_i, w_les)
        mask[sl] = w_les >= 0.5

    # ---- acquisition: bias field, Rician noise, gamma and gain
    img *= np.exp(_smooth_field(rng, (H, W), 3, 0.15))
    sigma = f32(rng.uniform(0.012, 0.04))
    re = _noise(rng, S)
    re *= sigma
    re[win] += img
    im = _noise(rng, S)
    im *= sigma
    mag = np.sqrt(re * re + im * im)
    gamma = float(rng.uniform(0.75, 1.35))
    gain = float(rng.uniform(0.62, 1.0))
    lut = np.clip(np.linspace(0.0, 1.0, 4096) ** gamma * (255.0 * gain) + 0.5, 0, 255).astype(np.uint8)
    mag *= f32(4095 / 1.3)
    np.minimum(mag, f32(4095), out=mag)
    image = lut[mag.astype(np.int32)]

    def full(m: np.ndarray) -> np.ndarray:
        out = np.zeros((S, S), dtype=bool)
        out[win] = m
        return out

    head = w_head >= 0.5
    return PhantomSlice(image=image, mask=full(mask), head=full(head), skull=full(head & (w_inner < 0.5)),
                        brain=full(w_brain >= 0.5), label=label)


def make_slice(label: str, rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One phantom slice of class `label`: (image uint8 HxW, lesion mask bool HxW; empty for notumor)."""
    p = make_phantom(label, rng, size)
    return p.image, p.mask


def _slice_rng(seed: int, class_index: int, i: int) -> np.random.Generator:
    """The generator of image `i` of class `class_index`: independent of how many images are made."""
    return np.random.default_rng([int(seed), int(class_index), int(i)])


# ------------------------------------------------------------------------------------------- arrays
def make_arrays(n_per_class: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-memory dataset for tests: (X float32 (N, size, size) in [0, 1], y int64 (N,), masks bool).

    Slices are drawn at 256 px (or at `size` if larger) with the same per-image seeds as `make_dataset`,
    then shrunk with PIL's antialiased bilinear filter, so small arrays have realistic noise; masks are
    shrunk the same way and thresholded at one half (a lesion too small for that keeps its most covered
    pixel, so masks stay empty iff notumor). Order is class-major, in `CLASSES` order.
    """
    if n_per_class < 1:
        raise TumorlensError(f"n_per_class must be at least 1, got {n_per_class}")
    if size < 8:
        raise TumorlensError(f"size must be at least 8 pixels, got {size}")
    gen = max(int(size), 256)
    X = np.empty((n_per_class * len(CLASSES), size, size), dtype=np.float32)
    M = np.empty(X.shape, dtype=bool)
    y = np.repeat(np.arange(len(CLASSES), dtype=np.int64), n_per_class)
    k = 0
    for ci, label in enumerate(CLASSES):
        for i in range(n_per_class):
            img, mask = make_slice(label, _slice_rng(seed, ci, i), gen)
            if gen != size:
                img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
                m = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)
                small = np.asarray(m)
                thr = 128 if (small >= 128).any() or not mask.any() else max(1, int(small.max()))
                mask = small >= thr  # a tiny lesion keeps its most covered pixel: empty iff notumor
            X[k] = img.astype(np.float32) * np.float32(1 / 255)
            M[k] = mask
            k += 1
    return X, y, M


# ------------------------------------------------------------------------------------------ dataset
def masks_root(out_dir: str | os.PathLike) -> Path:
    """Where `make_dataset(out_dir)` writes the masks: the sibling folder `<out_dir>_masks`."""
    out = Path(out_dir).absolute()
    return out.parent / f"{out.name}_masks"


def manifest_path(out_dir: str | os.PathLike) -> Path:
    """Where `make_dataset(out_dir)` writes its manifest: the sibling file `<out_dir>_manifest.csv`."""
    out = Path(out_dir).absolute()
    return out.parent / f"{out.name}_manifest.csv"


def _encode(img: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """PNG or JPEG bytes of a uint8 image, with no metadata so equal arrays give equal bytes."""
    buf = io.BytesIO()
    if ext == ".png":
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)  # 2.5x faster than 6
    else:
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    """One phantom file, written atomically (a full disk left a truncated mask PNG behind); its error names it."""
    try:
        atomic_write_bytes(path, data, fsync=False)
    except OSError as e:
        raise TumorlensError(f"{path}: {e.strerror or e}") from None


def _nonempty(p: Path) -> bool:
    return p.exists() and (not p.is_dir() or any(p.iterdir()))


def make_dataset(out_dir: str | os.PathLike, n_per_class: int = 50, size: int = 256, seed: int = 0,
                 split: bool = False, duplicates: int = 0, fmt: str = "png") -> Path:
    """Write a class-folder phantom dataset, its masks and a manifest; return `out_dir`.

    Layout: `out_dir/<class>/<class>_<i>.<fmt>`, or with `split=True` the first 80 % of each class under
    `out_dir/Training/<class>/` and the rest under `out_dir/Testing/<class>/`. Masks (PNG, 0/255) go to
    `masks_root(out_dir)` under the same relative paths, and the manifest to `manifest_path(out_dir)` (see
    the module docstring for its columns); both sit beside the root so the loader never sees them.

    `duplicates=k` plants k near-copies of randomly chosen originals, in the source's class, named like
    ordinary files (`<class>_<n>` upwards) so only their content gives them away. Their kinds cycle
    through `DUPLICATE_KINDS`: `reencoded` (JPEG quality 85, .jpg), `resized` (x0.75-1.5), `mirrored`
    (left-right) and `brightness` (x0.8-1.2 with clipping, and gamma 0.9-1.1). With `split=True`, two in
    three land on the other split than their source, so a leakage audit has something to find.

    Refuses to write into a non-empty `out_dir` or masks folder, so stale files can never mix in.
    """
    if n_per_class < 1:
        raise TumorlensError(f"n_per_class must be at least 1, got {n_per_class}")
    if split and n_per_class < 2:
        raise TumorlensError("a Training/Testing split needs at least 2 images per class")
    if duplicates < 0:
        raise TumorlensError(f"duplicates must be >= 0, got {duplicates}")
    ext = _FORMATS.get(str(fmt).lower())
    if ext is None:
        raise TumorlensError(f"unknown image format {fmt!r} (expected png or jpg)")
    out = Path(out_dir)
    mroot, mpath = masks_root(out), manifest_path(out)
    for p in (out, mroot):
        if p.exists() and not p.is_dir():
            raise TumorlensError(f"{p}: exists and is not a folder")
        if _nonempty(p):
            raise TumorlensError(f"{p}: folder is not empty; choose a new output folder")
    n_test = max(1, int(round(0.2 * n_per_class))) if split else 0
    n_train = n_per_class - n_test

    def rel_for(label: str, idx: int, test: bool | None, e: str) -> str:
        sub = ("Testing/" if test else "Training/") if split else ""
        return f"{sub}{label}/{label}_{idx}{e}"

    def mask_rel(rel: str) -> str:
        return f"{mroot.name}/{Path(rel).with_suffix('.png').as_posix()}"

    rows: list[tuple[str, str, str, str, str]] = []
    originals: list[tuple[str, str, bool | None, np.ndarray, np.ndarray]] = []
    for ci, label in enumerate(CLASSES):
        for i in range(n_per_class):
            img, mask = make_slice(label, _slice_rng(seed, ci, i), size)
            test = (i >= n_train) if split else None
            rel = rel_for(label, i, test, ext)
            _write(out / rel, _encode(img, ext))
            _write(mroot.parent / mask_rel(rel), _encode(mask.astype(np.uint8) * 255, ".png"))
            rows.append((rel, label, mask_rel(rel), "", "original"))
            originals.append((rel, label, test, img, mask))

    if duplicates:
        rng = np.random.default_rng([int(seed), _DUP_STREAM])
        picks = rng.choice(len(originals), size=duplicates, replace=duplicates > len(originals))
        next_idx = {label: n_per_class for label in CLASSES}
        for j, src in enumerate(picks):
            rel0, label, test, img, mask = originals[int(src)]
            kind = DUPLICATE_KINDS[j % len(DUPLICATE_KINDS)]
            e = ext
            if kind == "reencoded":
                e, data = ".jpg", _encode(img, ".jpg", quality=85)
                dmask = mask
            elif kind == "resized":
                f = rng.uniform(0.75, 1.5)
                side = max(16, int(round(size * f)))
                data = _encode(np.asarray(Image.fromarray(img).resize((side, side), Image.BILINEAR)), ext)
                dmask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side),
                                                                                        Image.NEAREST)) >= 128
            elif kind == "mirrored":
                data, dmask = _encode(np.ascontiguousarray(img[:, ::-1]), ext), mask[:, ::-1]
            else:  # brightness
                f, g = rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.1)
                x = (img.astype(np.float32) / 255.0) ** np.float32(g) * np.float32(255.0 * f)
                data, dmask = _encode(np.clip(x + 0.5, 0, 255).astype(np.uint8), ext), mask
            dtest = (not test if j % 3 != 0 else test) if split else None
            rel = rel_for(label, next_idx[label], dtest, e)
            next_idx[label] += 1
            _write(out / rel, data)
            _write(mroot.parent / mask_rel(rel),
                   _encode(np.ascontiguousarray(dmask).astype(np.uint8) * 255, ".png"))
            rows.append((rel, label, mask_rel(rel), rel0, kind))

    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("path", "label", "mask_path", "duplicate_of", "kind"))
    w.writerows(rows)
    # written last, and atomically: its presence marks a complete dataset (demo regenerates one without it)
    _write(mpath, buf.getvalue().encode("utf-8"))
    log.info("wrote %d phantom images (%d planted duplicates) to %s; masks in %s, manifest %s",
             len(rows), duplicates, out, mroot, mpath)
    return out
