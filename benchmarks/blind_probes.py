"""A blind probe set of 459 images that are NOT 2-D brain MRI slices, generated deterministically, and how
tumorlens answers them: how many it refuses, by which layer, and what it says about the rest.

    python benchmarks/blind_probes.py [--model CKPT] [--probes DIR] [--out FILE] [--threads N] [--only GROUPS]

The probes come from offline sources only: scikit-image's bundled data, scikit-learn's two sample photographs
(skipped, and said so, when scikit-learn is not installed), matplotlib's sample data (NOT its s1045.ima.gz,
which is a real brain MRI) and images synthesised here with numpy/scipy/PIL/matplotlib/pydicom. Sixteen
categories: grey and colour photographs (whole, edited, at very low JPEG quality), photographs and textures cut
to brain-like shapes on black (`photo_canvas`, and `canvas_grid`, a systematic grid of 14 sources x 4 canvases
that the set's author added after a first run showed masked photographs leaking), collages, synthetic textures
and drawings, documents, medical images of other body parts and modalities (X-ray, body MRI, CT, ultrasound,
fundus, histology, PET ...), brain-like decoys (drawings, walnuts, grey ellipses with gyri-like curves), DICOM
files that are not brain MRI (skipped, and said so, when pydicom is not installed) and odd file formats.
Every category draws from its own generator with a fixed seed, so a rerun writes the same files (bit for bit
for PNG/TIFF/BMP/DICOM with the same numpy, scipy, scikit-image, Pillow, matplotlib and pydicom; JPEG as the
installed libjpeg encodes); the text probes use the system's DejaVu fonts (matplotlib's copies, which differ in
bytes, when those are absent). A `manifest.csv` (file, description) is written at the top of the probe folder.

Every probe goes through `Predictor.predict_paths` (what `tumorlens predict` runs), refusal and abstention on;
the Markdown report (--out, default benchmarks/blind_probes.md) counts the answers by category (with the totals
also without `canvas_grid`) and by the layer that refused, and lists every probe that was not refused with its
description. --probes DIR keeps the images there (it must be empty or absent, outside the repository and
../shared); by default they go to a temporary folder that is removed at the end. --only GROUPS
(comma-separated: photo, canvas_grid, collage, texture, drawing, document, medical, decoy, dicom, format)
makes a subset.

Research use only - not a medical device.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import sys
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np
import skimage.data as skd
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage import exposure, transform

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "blind_probes.md"
sys.path.insert(0, str(ROOT / "benchmarks"))
from probe_sets import LAYERS, count_row, layer, report_head, run, unrefused_table  # noqa: E402  (shared)
from probe_sets import score as _score  # noqa: E402
GRID = "canvas_grid"
# where save() writes, and the (file, description) of every probe written; set by generate()
OUT = "."
MANIFEST: list[tuple[str, str]] = []
SYSTEM_FONTS = "/usr/share/fonts/truetype/dejavu"
SAMPLE = os.path.join(matplotlib.get_data_path(), "sample_data")


def _font_path(name: str) -> str:
    p = os.path.join(SYSTEM_FONTS, name)
    return p if os.path.isfile(p) else os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


FONT = _font_path("DejaVuSans.ttf")
FONTM = _font_path("DejaVuSansMono.ttf")


def font(sz, mono=False):
    return ImageFont.truetype(FONTM if mono else FONT, sz)


def _pyplot():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------- helpers
def f01(a):
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(np.float64)
    a = a.astype(np.float64)
    if a.max() > 1.0 + 1e-9:
        a = a / 255.0
    return np.clip(a, 0, 1)


def gray(a):
    a = f01(a)
    if a.ndim == 3:
        a = a[..., :3]
        a = a @ np.array([0.299, 0.587, 0.114])
    return a


def norm(a):
    a = a.astype(np.float64)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo + 1e-12)


def resize(a, h, w=None):
    if w is None:
        # h = long side
        ar = a.shape[1] / a.shape[0]
        if ar >= 1:
            w, h = h, max(8, int(round(h / ar)))
        else:
            w = max(8, int(round(h * ar)))
    return transform.resize(a, (h, w) + a.shape[2:], order=1, anti_aliasing=True)


def to_u8(a):
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def save(a, cat, name, desc, fmt="png", quality=90):
    d = os.path.join(OUT, cat)
    os.makedirs(d, exist_ok=True)
    if isinstance(a, Image.Image):
        im = a
    else:
        im = Image.fromarray(to_u8(a))
    if fmt in ("jpg", "jpeg") and im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    fn = f"{name}.{fmt}"
    p = os.path.join(d, fn)
    kw = {}
    if fmt == "jpg":
        kw = dict(quality=int(quality))
    im.save(p, **kw)
    MANIFEST.append((f"{cat}/{fn}", desc))
    return p


def fbm(n, m=None, beta=2.0, seed=0):
    """1/f^beta spectral noise, normalised 0..1"""
    m = m or n
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(m)[None, :]
    k = np.sqrt(kx ** 2 + ky ** 2)
    k[0, 0] = 1
    amp = 1 / k ** (beta / 2)
    amp[0, 0] = 0
    ph = rng.normal(size=(n, m)) + 1j * rng.normal(size=(n, m))
    return norm(np.real(np.fft.ifft2(amp * ph)))


def yx(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return (y - (h - 1) / 2) / (h / 2), (x - (w - 1) / 2) / (w / 2)


def ellipse_mask(h, w, ry=0.9, rx=0.75, cy=0.0, cx=0.0, rot=0.0):
    y, x = yx(h, w)
    y, x = y - cy, x - cx
    c, s = np.cos(rot), np.sin(rot)
    xr, yr = c * x + s * y, -s * x + c * y
    return (xr / rx) ** 2 + (yr / ry) ** 2


def shape_mask(h, w, kind, rng, soft=0.0):
    if kind == "ellipse":
        m = ellipse_mask(h, w, rng.uniform(0.7, 0.95), rng.uniform(0.55, 0.85)) <= 1
    elif kind == "circle":
        r = rng.uniform(0.6, 0.95)
        m = ellipse_mask(h, w, r, r * h / w) <= 1
    elif kind == "roundrect":
        y, x = yx(h, w)
        a, b, r = rng.uniform(0.6, 0.85), rng.uniform(0.55, 0.85), rng.uniform(0.15, 0.4)
        dx = np.maximum(np.abs(x) - (b - r), 0)
        dy = np.maximum(np.abs(y) - (a - r), 0)
        m = dx ** 2 + dy ** 2 <= r ** 2
    elif kind == "blob":
        y, x = yx(h, w)
        th = np.arctan2(y, x)
        rr = np.sqrt(y ** 2 + (x * 1.15) ** 2)
        rad = 0.75
        for k in range(2, 7):
            rad = rad + rng.uniform(-0.06, 0.06) * np.cos(k * th + rng.uniform(0, 6.28))
        m = rr <= rad
    else:
        raise ValueError(kind)
    m = m.astype(np.float64)
    if soft > 0:
        m = ndi.gaussian_filter(m, soft * min(h, w) / 100.0)
    return m


def on_canvas(img, kind, rng, soft=0.0, size=256, bg=0.0):
    img = f01(img)
    if img.shape[0] != size or img.shape[1] != size:
        img = transform.resize(img, (size, size) + img.shape[2:], anti_aliasing=True)
    m = shape_mask(size, size, kind, rng, soft)
    if img.ndim == 3:
        m = m[..., None]
    return img * m + bg * (1 - m)


def vignette(img, strength=1.2):
    h, w = img.shape[:2]
    y, x = yx(h, w)
    v = np.clip(1 - strength * (x ** 2 + y ** 2) / 2, 0, 1)
    if img.ndim == 3:
        v = v[..., None]
    return img * v


def augment(a, rng, n_ops=None):
    """random chain of photo edits; returns (img, description)"""
    ops = ["crop", "rot", "mirror", "invert", "gamma", "poster", "blur", "sharpen",
           "noise", "saltpepper", "equalize", "scale", "flipud", "contrast"]
    n_ops = n_ops or int(rng.integers(1, 4))
    chosen = list(rng.choice(ops, size=n_ops, replace=False))
    desc = []
    a = f01(a)
    for op in chosen:
        if op == "crop":
            h, w = a.shape[:2]
            f = rng.uniform(0.4, 0.85)
            ch, cw = int(h * f), int(w * f)
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            a = a[y0:y0 + ch, x0:x0 + cw]
            desc.append(f"crop{f:.2f}")
        elif op == "rot":
            ang = float(rng.choice([13, 27, 41, 67, 93, 133, 171, 211, 259, 307]))
            a = ndi.rotate(a, ang, axes=(1, 0), reshape=bool(rng.integers(0, 2)), order=1, mode="constant")
            a = np.clip(a, 0, 1)
            desc.append(f"rot{ang:g}")
        elif op == "mirror":
            a = a[:, ::-1]
            desc.append("mirrorLR")
        elif op == "flipud":
            a = a[::-1]
            desc.append("flipUD")
        elif op == "invert":
            a = 1 - a
            desc.append("invert")
        elif op == "gamma":
            g = float(rng.choice([0.35, 0.5, 0.7, 1.6, 2.2, 3.0]))
            a = a ** g
            desc.append(f"gamma{g}")
        elif op == "poster":
            lv = int(rng.integers(3, 7))
            a = np.round(a * (lv - 1)) / (lv - 1)
            desc.append(f"poster{lv}")
        elif op == "blur":
            s = float(rng.uniform(1, 4))
            sig = (s, s, 0) if a.ndim == 3 else s
            a = ndi.gaussian_filter(a, sig)
            desc.append(f"blur{s:.1f}")
        elif op == "sharpen":
            sig = (2, 2, 0) if a.ndim == 3 else 2
            a = np.clip(a + 1.5 * (a - ndi.gaussian_filter(a, sig)), 0, 1)
            desc.append("sharpen")
        elif op == "noise":
            s = float(rng.uniform(0.04, 0.2))
            a = np.clip(a + rng.normal(0, s, a.shape), 0, 1)
            desc.append(f"gnoise{s:.2f}")
        elif op == "saltpepper":
            m = rng.random(a.shape[:2])
            a = a.copy()
            a[m < 0.03] = 0
            a[m > 0.97] = 1
            desc.append("saltpepper")
        elif op == "equalize":
            a = exposure.equalize_hist(a)
            desc.append("histeq")
        elif op == "scale":
            f = float(rng.choice([0.3, 0.5, 1.5, 2.0]))
            h, w = a.shape[:2]
            a = transform.resize(a, (max(16, int(h * f)), max(16, int(w * f))) + a.shape[2:], anti_aliasing=True)
            desc.append(f"scale{f}")
        elif op == "contrast":
            c = float(rng.choice([0.3, 0.5, 1.8]))
            a = np.clip((a - 0.5) * c + 0.5, 0, 1)
            desc.append(f"contrast{c}")
    return np.clip(a, 0, 1), "+".join(desc)


def clamp_size(a, rng, lo=64, hi=1024):
    h, w = a.shape[:2]
    L = max(h, w)
    if L > hi or L < lo or rng.random() < 0.35:
        tgt = int(rng.integers(lo, min(hi, 900) + 1))
        a = resize(a, tgt)
    if min(a.shape[:2]) < 16:
        a = transform.resize(a, (max(16, a.shape[0]), max(16, a.shape[1])) + a.shape[2:])
    return a


# ----------------------------------------------------------------- sources
def photo_sources():
    """name -> RGB or grey array, and the names skipped because scikit-learn, which holds two of the
    photographs, is not installed (the later sources then shift in the collages' draws)."""
    srcs = {
        "astronaut": skd.astronaut(), "camera": skd.camera(), "chelsea": skd.chelsea(),
        "coffee": skd.coffee(), "coins": skd.coins(), "clock": skd.clock(), "moon": skd.moon(),
        "brick": skd.brick(), "grass": skd.grass(), "gravel": skd.gravel(), "cell": skd.cell(),
        "rocket": skd.rocket(), "hubble": skd.hubble_deep_field(),
        "motorcycle": skd.stereo_motorcycle()[0], "colorwheel": skd.colorwheel(),
    }
    skipped = []
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        skipped = ["china", "flower"]
    else:
        china, flower = load_sample_images().images
        srcs["china"], srcs["flower"] = china, flower
    srcs["grace_hopper"] = np.array(Image.open(os.path.join(SAMPLE, "grace_hopper.jpg")))
    srcs["minduka"] = np.array(Image.open(os.path.join(SAMPLE, "Minduka_Present_Blue_Pack.png"))
                               .convert("RGB"))
    return srcs, skipped


# ----------------------------------------------------------------- categories
def cat_photo_gray(srcs):
    rng = np.random.default_rng(101)
    cat = "photo_gray"
    for name, a in srcs.items():
        g = gray(a)
        fmt = "png" if rng.random() < 0.5 else "jpg"
        save(clamp_size(g, rng), cat, f"{name}_plain", f"grayscale photo '{name}' whole", fmt)
        for k in range(2 if name in ("camera", "moon", "coins", "grace_hopper", "astronaut", "cell", "clock") else 1):
            b, d = augment(g, rng)
            b = clamp_size(b, rng)
            fmt = "png" if rng.random() < 0.5 else "jpg"
            save(b, cat, f"{name}_aug{k}", f"grayscale photo '{name}' {d}", fmt)
    # hard JPEG
    for name in ["camera", "grace_hopper", "astronaut", "coins"]:
        g = clamp_size(gray(srcs[name]), rng)
        q = int(rng.integers(3, 12))
        save(g, cat, f"{name}_jpegq{q}", f"grayscale photo '{name}' JPEG quality {q}", "jpg", q)


def cat_photo_color(srcs):
    rng = np.random.default_rng(202)
    cat = "photo_color"
    for name, a in srcs.items():
        a = f01(a)
        if a.ndim == 2 or np.allclose(a[..., 0], a[..., 1]):
            continue
        fmt = "png" if rng.random() < 0.5 else "jpg"
        save(clamp_size(a, rng), cat, f"{name}_plain", f"colour photo '{name}' whole", fmt)
        b, d = augment(a, rng)
        b = clamp_size(b, rng)
        fmt = "png" if rng.random() < 0.5 else "jpg"
        save(b, cat, f"{name}_aug", f"colour photo '{name}' {d}", fmt)
    for name in ["astronaut", "chelsea", "china"]:
        a = clamp_size(f01(srcs[name]), rng)
        q = int(rng.integers(3, 10))
        save(a, cat, f"{name}_jpegq{q}", f"colour photo '{name}' JPEG quality {q}", "jpg", q)
    # single-channel tints
    for name in ["camera", "moon"]:
        g = clamp_size(gray(srcs[name]), rng)
        t = np.stack([g, g * 0.6, g * 0.3], -1)
        save(t, cat, f"{name}_sepia", f"photo '{name}' sepia/orange tint", "jpg")


def cat_photo_canvas(srcs):
    """photos/crops placed on black canvases of brain-like shapes"""
    rng = np.random.default_rng(303)
    cat = "photo_canvas"
    names = list(srcs.keys())
    kinds = ["ellipse", "circle", "roundrect", "blob"]
    i = 0
    for name in names:
        for rep in range(2 if name in ("camera", "grace_hopper", "coins", "moon", "gravel", "cell", "brick") else 1):
            a = srcs[name]
            colour = rng.random() < 0.3 and f01(a).ndim == 3
            a = f01(a) if colour else gray(a)
            if rng.random() < 0.5:
                a, d = augment(a, rng, 1)
            else:
                d = ""
            h, w = a.shape[:2]
            s = min(h, w)
            y0, x0 = (h - s) // 2, (w - s) // 2
            a = a[y0:y0 + s, x0:x0 + s]
            kind = kinds[i % 4]
            soft = float(rng.choice([0, 0, 2, 5]))
            size = int(rng.choice([128, 224, 256, 300, 512, 640]))
            img = on_canvas(a, kind, rng, soft, size)
            vig = rng.random() < 0.3
            if vig:
                img = vignette(img)
            # pad to non-square canvas sometimes
            if rng.random() < 0.3:
                pad = int(size * rng.uniform(0.05, 0.25))
                pw = ((pad, pad), (0, 0)) + (((0, 0),) if img.ndim == 3 else ())
                img = np.pad(img, pw)
            fmt = "png" if rng.random() < 0.6 else "jpg"
            desc = (f"{'colour' if colour else 'grey'} '{name}' {d} in {kind} on black"
                    f"{' soft edge' if soft else ' hard edge'}{' vignetted' if vig else ''}")
            save(img, cat, f"{name}_{kind}_{rep}", desc, fmt)
            i += 1
    # textures (skimage) in ellipses -- brain-sized
    for j, name in enumerate(["gravel", "brick", "grass", "moon", "camera", "coins"]):
        g = gray(srcs[name])
        g = ndi.gaussian_filter(g, 1.5)
        img = on_canvas(g * 0.8 + 0.1, "ellipse", rng, 1.0, 256)
        img = img * (ellipse_mask(256, 256, 0.95, 0.8) <= 1)
        # bright rim like scalp
        ring = (np.abs(np.sqrt(ellipse_mask(256, 256, 0.92, 0.76)) - 1) < 0.04)
        img = np.maximum(img, ring * 0.95)
        save(img, cat, f"{name}_ellipse_rim", f"grey blurred '{name}' texture in ellipse with bright rim on black",
             "png")


def cat_collage(srcs):
    rng = np.random.default_rng(404)
    cat = "collage"
    names = list(srcs.keys())
    for k in range(14):
        g = int(rng.choice([2, 3, 4]))
        tile = int(rng.choice([64, 96, 128, 160]))
        colour = k % 3 == 0
        rows = []
        picks = []
        for r in range(g):
            row = []
            for c in range(g):
                n = names[int(rng.integers(len(names)))]
                picks.append(n)
                a = f01(srcs[n]) if colour else gray(srcs[n])
                if colour and a.ndim == 2:
                    a = np.stack([a] * 3, -1)
                if colour and a.shape[-1] == 4:
                    a = a[..., :3]
                h, w = a.shape[:2]
                s = min(h, w)
                a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
                row.append(transform.resize(a, (tile, tile) + a.shape[2:], anti_aliasing=True))
            rows.append(np.concatenate(row, 1))
        img = np.concatenate(rows, 0)
        if k % 4 == 1:
            # black gutters
            gw = 6
            img2 = np.zeros((g * (tile + gw),) * 2 + img.shape[2:])
            for r in range(g):
                for c in range(g):
                    img2[r * (tile + gw):r * (tile + gw) + tile, c * (tile + gw):c * (tile + gw) + tile] = \
                        img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]
            img = img2
        save(img, cat, f"mosaic{k:02d}",
             f"{g}x{g} {'colour' if colour else 'grey'} mosaic of {','.join(sorted(set(picks)))}",
             "png" if k % 2 else "jpg")
    # mosaics of round crops on black (contact sheet of discs)
    for k in range(4):
        g = 3
        tile = 128
        img = np.zeros((g * tile, g * tile))
        for r in range(g):
            for c in range(g):
                n = names[int(rng.integers(len(names)))]
                a = gray(srcs[n])
                s = min(a.shape)
                a = transform.resize(a[:s, :s], (tile, tile), anti_aliasing=True)
                img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = on_canvas(a, "ellipse", rng, 1, tile)
        save(img, cat, f"discsheet{k}", "3x3 contact sheet of grey photo crops in ellipses on black", "png")
    # the scikit-learn lfw faces mosaic
    faces = skd.lfw_subset()
    for k in range(2):
        idx = rng.choice(len(faces), 16, replace=False)
        img = np.concatenate([np.concatenate([faces[i] for i in idx[r * 4:(r + 1) * 4]], 1) for r in range(4)], 0)
        save(resize(img, 300), cat, f"lfw_faces{k}", "4x4 mosaic of small grey face crops (LFW)", "png")
    for k in range(3):
        f = skd.lfw_subset()[int(rng.integers(200))]
        save(resize(f, int(rng.choice([64, 128, 200]))), cat, f"lfw_face{k}", "single upscaled grey face crop (LFW)",
             "png")


def cat_synth_texture():
    plt = _pyplot()
    rng = np.random.default_rng(505)
    cat = "synth_texture"
    for k in range(6):
        n = int(rng.choice([128, 256, 384, 512]))
        b = float(rng.choice([1.5, 2.0, 2.5, 3.0, 3.5, 4.0]))
        save(fbm(n, beta=b, seed=1000 + k), cat, f"fbm{k}", f"fractal noise beta {b}", "png" if k % 2 else "jpg")
    # coloured fractal
    for k in range(2):
        n = 256
        img = np.stack([fbm(n, beta=3, seed=1100 + 3 * k + c) for c in range(3)], -1)
        save(img, cat, f"fbm_rgb{k}", "colour fractal noise", "png")
    # voronoi / cellular
    for k in range(6):
        n = int(rng.choice([200, 256, 400, 512]))
        pts = rng.random((int(rng.integers(20, 300)), 2)) * n
        y, x = np.mgrid[0:n, 0:n]
        t = cKDTree(pts)
        d, i = t.query(np.stack([y.ravel(), x.ravel()], 1), k=2)
        if k % 3 == 0:
            img = norm(d[:, 0]).reshape(n, n)
            desc = "Worley/cellular distance noise"
        elif k % 3 == 1:
            img = norm(d[:, 1] - d[:, 0]).reshape(n, n)
            img = (img > 0.05).astype(float) * 0.8
            desc = "Voronoi cell edges"
        else:
            vals = rng.random(len(pts))
            img = vals[i[:, 0]].reshape(n, n)
            desc = "Voronoi flat-shaded cells"
        save(img, cat, f"voronoi{k}", desc, "png")
    # fingerprint-like ridges
    for k in range(5):
        n = int(rng.choice([256, 300, 400]))
        y, x = yx(n, n)
        warp = (fbm(n, beta=4, seed=1200 + k) - 0.5) * 0.8
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        r = np.sqrt((y - cy) ** 2 * 1.4 + (x - cx) ** 2)
        th = np.arctan2(y - cy, x - cx)
        ph = 40 * r + 6 * warp * 10 + 2 * np.sin(th)
        img = 0.5 + 0.5 * np.sin(ph)
        m = shape_mask(n, n, "ellipse", rng, 3)
        img = 1 - (1 - img) * m  # dark ridges on white
        if k % 2:
            img = 1 - img  # inverted: bright ridges on black
        save(img, cat, f"fingerprint{k}",
             f"fingerprint-like ridges in ellipse{' inverted (bright on black)' if k % 2 else ' (dark on white)'}",
             "png" if k % 2 else "jpg")
    # marble and wood
    for k in range(4):
        n = 320
        y, x = yx(n, n)
        t = fbm(n, beta=3.2, seed=1300 + k)
        img = 0.5 + 0.5 * np.sin(6 * x + 7 * t * (k + 1))
        img = img ** 0.5
        if k % 2:
            img = np.stack([img * 0.95, img * 0.92, img * 0.88], -1)
        save(img, cat, f"marble{k}", "marble texture", "jpg")
    for k in range(4):
        n = 320
        y, x = yx(n, n)
        t = fbm(n, beta=3.5, seed=1400 + k)
        r = np.sqrt((y + 1.3) ** 2 + (x * 0.3) ** 2)
        img = (np.sin(60 * r + 8 * t) + 1) / 2
        img = 0.4 + 0.4 * img ** 3
        col = np.stack([img, img * 0.7, img * 0.4], -1)
        save(col if k % 2 else img, cat, f"wood{k}", f"wood grain {'colour' if k % 2 else 'grey'}", "jpg")
    # clouds
    for k in range(3):
        n = 400
        c = np.clip((fbm(n, beta=3, seed=1500 + k) - 0.45) * 2.5, 0, 1)
        sky = np.stack([0.3 + 0.6 * c, 0.5 + 0.45 * c, 0.9 + 0.1 * c], -1)
        save(sky if k < 2 else c, cat, f"clouds{k}", "clouds in blue sky" if k < 2 else "grey cloud noise", "jpg")
    # topographic map
    for k in range(3):
        n = 360
        t = fbm(n, beta=3.6, seed=1600 + k)
        lines = (np.abs(((t * 15) % 1) - 0.5) > 0.45).astype(float)
        if k == 2:
            img = plt.get_cmap("terrain")(t)[..., :3] * (1 - 0.6 * lines[..., None])
        else:
            img = 1 - 0.8 * lines
        save(img, cat, f"topo{k}", "topographic contour map" + (" coloured" if k == 2 else ""), "png")
    # star field
    for k in range(4):
        n = int(rng.choice([256, 512, 800]))
        img = np.zeros((n, n))
        m = int(rng.integers(100, 1500))
        ys, xs = rng.integers(0, n, m), rng.integers(0, n, m)
        img[ys, xs] = rng.random(m) ** 3
        img = ndi.gaussian_filter(img, 0.8) * 8
        if k >= 2:  # nebula/galaxy: a bright central blob on black
            y, x = yx(n, n)
            gal = np.exp(-((x / 0.5) ** 2 + (y / 0.3) ** 2) * 3) * (0.6 + 0.4 * fbm(n, beta=3, seed=1700 + k))
            img = img + gal
        save(np.clip(img, 0, 1), cat, f"stars{k}", "star field" + (" with elliptical galaxy glow" if k >= 2 else ""),
             "png")
    # full-moon like disc on black
    for k in range(3):
        n = int(rng.choice([256, 384, 512]))
        y, x = yx(n, n)
        r = np.sqrt(x ** 2 + y ** 2)
        surf = 0.55 + 0.3 * (fbm(n, beta=2.5, seed=1800 + k) - 0.5)
        for c in range(40):
            cy, cx, cr = rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), rng.uniform(0.02, 0.12)
            d = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
            surf -= 0.15 * (d < cr) - 0.1 * (np.abs(d - cr) < 0.01)
        img = np.clip(surf, 0, 1) * (r < 0.85) * np.sqrt(np.clip(1 - (r / 0.85) ** 2, 0, 1)) ** 0.3
        save(img, cat, f"fullmoon{k}", "synthetic full moon: cratered grey disc on black", "png")
    # cross-sections: tree rings, onion, citrus
    for k in range(4):
        n = 320
        y, x = yx(n, n)
        t = fbm(n, beta=3.5, seed=1900 + k)
        r = np.sqrt(y ** 2 + (x * 1.1) ** 2) + 0.05 * (t - 0.5)
        if k < 2:
            img = (0.45 + 0.25 * np.sin(80 * r) ** 8) * (r < 0.85) + 0.3 * (np.abs(r - 0.88) < 0.04)
            desc = "tree trunk cross-section with rings on black"
            col = np.stack([img, img * 0.75, img * 0.5], -1) if k else img
        else:
            th = np.arctan2(y, x)
            seg = np.abs(np.sin(5 * th)) < 0.05
            img = (0.8 - 0.3 * seg - 0.2 * (np.abs(r - 0.75) < 0.03)) * (r < 0.85)
            desc = "citrus slice cross-section on black"
            col = np.stack([img, img * 0.8, img * 0.1], -1) if k == 3 else img
        save(col, cat, f"xsection{k}", desc, "jpg")
    # skimage synthetic textures
    save(skd.binary_blobs(length=256, rng=1).astype(float), cat, "binary_blobs", "skimage binary blobs", "png")
    save(skd.checkerboard(), cat, "checkerboard", "skimage checkerboard", "png")
    # pure noises & flat fields
    save(rng.random((256, 256)), cat, "white_noise", "uniform white noise", "png")
    save(np.full((200, 300), 0.5), cat, "flat_grey", "flat mid-grey", "png")
    save(np.zeros((256, 256)), cat, "all_black", "all black", "png")
    save(np.ones((128, 128)), cat, "all_white", "all white", "jpg")
    y, x = yx(256, 256)
    save(norm(x + y), cat, "gradient", "diagonal gradient", "png")
    save(np.exp(-(x ** 2 + y ** 2) * 3), cat, "gauss_blob", "single Gaussian blob on black", "png")


def cat_synth_drawing():
    rng = np.random.default_rng(606)
    cat = "synth_drawing"
    # random line drawings
    for k in range(5):
        n = int(rng.choice([256, 400, 512]))
        bgv = 255 if k < 3 else 0
        im = Image.new("L" if k % 2 else "RGB", (n, n), bgv if k % 2 else (bgv,) * 3)
        d = ImageDraw.Draw(im)
        for j in range(int(rng.integers(10, 40))):
            pts = [tuple(rng.integers(0, n, 2).tolist()) for _ in range(int(rng.integers(2, 6)))]
            fill = int(rng.integers(0, 256)) if k % 2 else tuple(rng.integers(0, 256, 3).tolist())
            d.line(pts, fill=fill, width=int(rng.integers(1, 5)))
        save(im, cat, f"lines{k}", "random line scribbles " + ("on white" if k < 3 else "on black"), "png")
    # cartoon faces
    for k in range(6):
        n = int(rng.choice([200, 256, 320, 480]))
        bgc = (255, 255, 255) if k % 2 else (0, 0, 0)
        im = Image.new("RGB", (n, n), bgc)
        d = ImageDraw.Draw(im)
        skin = tuple(int(v) for v in rng.integers(120, 256, 3))
        if k >= 4:
            skin = (170, 170, 170)
        d.ellipse([n * 0.15, n * 0.08, n * 0.85, n * 0.92], fill=skin, outline=(40, 40, 40), width=3)
        for ex in (0.36, 0.64):
            d.ellipse([n * (ex - 0.07), n * 0.32, n * (ex + 0.07), n * 0.44], fill=(255, 255, 255), outline=(0, 0, 0),
                      width=2)
            d.ellipse([n * (ex - 0.03), n * 0.35, n * (ex + 0.03), n * 0.41], fill=(0, 0, 0))
        d.arc([n * 0.3, n * 0.5, n * 0.7, n * 0.78], 20, 160, fill=(120, 0, 0), width=4)
        d.line([(n * 0.5, n * 0.45), (n * 0.47, n * 0.58), (n * 0.52, n * 0.58)], fill=(60, 60, 60), width=2)
        if k >= 4:
            im = im.convert("L")
        save(im, cat, f"cartoonface{k}",
             f"cartoon face oval on {'white' if k % 2 else 'black'}" + (" (grey)" if k >= 4 else ""),
             "png" if k % 2 else "jpg")
    # shapes
    for k in range(6):
        n = int(rng.choice([128, 256, 300, 512]))
        im = Image.new("L", (n, n), 0 if k % 2 == 0 else 255)
        d = ImageDraw.Draw(im)
        for j in range(int(rng.integers(3, 12))):
            x0, y0 = rng.integers(0, n, 2)
            s = int(rng.integers(n // 10, n // 3))
            v = int(rng.integers(30, 255))
            t = j % 3
            if t == 0:
                d.ellipse([x0, y0, x0 + s, y0 + s], fill=v)
            elif t == 1:
                d.rectangle([x0, y0, x0 + s, y0 + s // 2], fill=v)
            else:
                d.polygon([(x0, y0), (x0 + s, y0), (x0 + s // 2, y0 - s)], fill=v)
        save(im, cat, f"shapes{k}", "random filled geometric shapes", "png")
    # one big grey ellipse / nested ellipses on black (phantom-like geometric)
    for k in range(4):
        n = 256
        im = Image.new("L", (n, n), 0)
        d = ImageDraw.Draw(im)
        d.ellipse([30, 15, 226, 241], fill=int(rng.integers(90, 200)))
        if k >= 1:
            d.ellipse([50, 40, 206, 216], fill=int(rng.integers(60, 160)))
        if k >= 2:
            for j in range(5):
                x0, y0 = rng.integers(70, 170, 2)
                d.ellipse([x0, y0, x0 + 25, y0 + 15], fill=int(rng.integers(0, 255)))
        if k == 3:
            im = im.filter(ImageFilter.GaussianBlur(2))
        save(im, cat, f"ellipses{k}", f"flat grey geometric ellipse(s) on black ({k} levels of detail)", "png")
    # skimage logo / horse silhouette / colorwheel
    save(f01(skd.logo())[..., :3], cat, "skimage_logo", "scikit-image logo", "png")
    save(skd.horse().astype(float), cat, "horse", "horse silhouette", "png")
    save(Image.open(os.path.join(SAMPLE, "logo2.png")), cat, "mpl_logo", "matplotlib logo", "png")
    # emoji-like smiley in circle, grey
    n = 300
    y, x = yx(n, n)
    sm = (x ** 2 + y ** 2 < 0.8) * 0.7
    sm[((x + 0.3) ** 2 + (y + 0.25) ** 2) < 0.01] = 0
    sm[((x - 0.3) ** 2 + (y + 0.25) ** 2) < 0.01] = 0
    sm[(np.abs(np.sqrt(x ** 2 + y ** 2) - 0.5) < 0.04) & (y > 0.15)] = 0
    save(sm, cat, "smiley", "grey smiley disc on black", "png")


def cat_documents():
    plt = _pyplot()
    rng = np.random.default_rng(707)
    cat = "documents"
    words = ("the patient image model slice brain tumour report figure table value result method data "
             "analysis section results discussion introduction abstract conclusion sample test train").split()
    # text pages
    for k in range(5):
        W, H = int(rng.choice([400, 600, 800])), int(rng.choice([500, 800, 1000]))
        im = Image.new("L", (W, H), 255)
        d = ImageDraw.Draw(im)
        f = font(int(rng.integers(10, 20)))
        yy = 20
        d.text((20, yy), "Report %d" % k, font=font(28), fill=0)
        yy += 50
        while yy < H - 30:
            line = " ".join(rng.choice(words, int(rng.integers(4, 12))))
            d.text((20, yy), line, font=f, fill=int(rng.integers(0, 60)))
            yy += f.size + 6
        save(im, cat, f"textpage{k}", "black text page on white", "png" if k % 2 else "jpg")
    # inverted text
    im = Image.new("L", (512, 300), 0)
    d = ImageDraw.Draw(im)
    for i in range(10):
        d.text((10, 10 + 28 * i), " ".join(rng.choice(words, 7)), font=font(18, True), fill=230)
    save(im, cat, "terminal", "terminal-like white monospace text on black", "png")
    # screenshots
    for k in range(4):
        W, H = 800, 600
        im = Image.new("RGB", (W, H), (235, 235, 240))
        d = ImageDraw.Draw(im)
        d.rectangle([0, 0, W, 30], fill=(50, 60, 90))
        d.text((10, 6), "TumorLens viewer - file.png", font=font(14), fill=(255, 255, 255))
        for b in range(5):
            d.rectangle([10 + 110 * b, 40, 110 + 110 * b, 70], fill=(200, 200, 210), outline=(100, 100, 100))
            d.text((20 + 110 * b, 47), ["Open", "Save", "Run", "Export", "Help"][b], font=font(14), fill=(0, 0, 0))
        # panel with black viewport containing grey blob
        d.rectangle([10, 80, 500, 590], fill=(0, 0, 0))
        if k % 2 == 0:
            d.ellipse([80, 120, 430, 550], fill=(120, 120, 120))
            d.ellipse([200, 260, 300, 380], fill=(200, 200, 200))
        else:
            d.rectangle([100, 150, 400, 500], fill=(90, 90, 90))
        for r in range(12):
            d.text((520, 90 + 24 * r), f"field_{r}: {rng.random():.3f}", font=font(13), fill=(20, 20, 20))
        save(im, cat, f"screenshot{k}",
             "GUI screenshot with dark viewport "
             + ("holding a grey ellipse" if k % 2 == 0 else "holding a grey rectangle"),
             "png")
    # matplotlib plots
    kinds = ["line", "bar", "scatter", "hist", "imshow", "pie", "contour", "eeg", "stocks", "polar", "confmat", "roc"]
    for k, kd in enumerate(kinds):
        fig, ax = plt.subplots(figsize=(rng.uniform(3, 8), rng.uniform(3, 6)), dpi=80,
                               subplot_kw={"projection": "polar"} if kd == "polar" else {})
        x = np.linspace(0, 10, 200)
        if kd == "line":
            for j in range(3):
                ax.plot(x, np.sin(x * (j + 1)) + rng.normal(0, 0.1, x.size))
        elif kd == "bar":
            ax.bar(range(8), rng.random(8))
        elif kd == "scatter":
            ax.scatter(rng.normal(size=300), rng.normal(size=300), c=rng.random(300))
        elif kd == "hist":
            ax.hist(rng.normal(size=1000), 40)
        elif kd == "imshow":
            ax.imshow(np.load(os.path.join(SAMPLE, "axes_grid", "bivariate_normal.npy")), cmap="viridis")
        elif kd == "pie":
            ax.pie(rng.random(5))
        elif kd == "contour":
            X, Y = np.meshgrid(x, x)
            ax.contourf(X, Y, np.sin(X) * np.cos(Y), 12, cmap="gray")
        elif kd == "eeg":
            eeg = np.fromfile(os.path.join(SAMPLE, "eeg.dat"), dtype=float).reshape(800, 4)
            for j in range(4):
                ax.plot(eeg[:, j] + j * 4, "k", lw=0.6)
        elif kd == "stocks":
            p = np.load(os.path.join(SAMPLE, "goog.npz"))["price_data"]
            ax.plot([r[4] for r in p] if p.dtype.names else p)
        elif kd == "polar":
            ax.plot(x, 1 + 0.3 * np.sin(5 * x))
        elif kd == "confmat":
            ax.imshow(rng.integers(0, 100, (4, 4)), cmap="Blues")
            ax.set_xticks(range(4), ["glioma", "menin.", "notumor", "pituit."])
        elif kd == "roc":
            for j in range(4):
                t = np.sort(rng.random(50))
                ax.plot(t, t ** (0.1 + 0.1 * j))
        ax.set_title(kd)
        b = io.BytesIO()
        fig.savefig(b, format="png")
        plt.close(fig)
        im = Image.open(io.BytesIO(b.getvalue())).convert("RGB")
        save(im, cat, f"plot_{kd}", f"matplotlib {kd} plot", "png" if k % 3 else "jpg")
    # table
    im = Image.new("L", (600, 400), 255)
    d = ImageDraw.Draw(im)
    for r in range(11):
        d.line([(20, 20 + 35 * r), (580, 20 + 35 * r)], fill=0)
    for c in range(6):
        d.line([(20 + 112 * c, 20), (20 + 112 * c, 370)], fill=0)
        for r in range(10):
            d.text((25 + 112 * c, 28 + 35 * r), f"{rng.random():.3f}", font=font(14), fill=0)
    save(im, cat, "table", "grid table of numbers", "png")
    # skimage page & text
    save(skd.page(), cat, "sk_page", "scanned page of text (skimage)", "png")
    save(skd.text(), cat, "sk_text", "photographed text (skimage)", "jpg")
    # QR-like code
    q = rng.random((25, 25)) < 0.5
    for (yy, xx) in [(0, 0), (0, 18), (18, 0)]:
        q[yy:yy + 7, xx:xx + 7] = True
        q[yy + 1:yy + 6, xx + 1:xx + 6] = False
        q[yy + 2:yy + 5, xx + 2:xx + 5] = True
    q = np.pad(~q, 4, constant_values=True)
    save(np.kron(q, np.ones((8, 8))).astype(float), cat, "qrcode", "QR-code-like pattern", "png")
    # barcode
    bars = np.repeat(rng.random(90) < 0.5, 4)
    save(np.tile(bars, (120, 1)).astype(float), cat, "barcode", "barcode", "png")
    # DEM / topobathy as images (matplotlib sample data)
    dem = np.load(os.path.join(SAMPLE, "jacksboro_fault_dem.npz"))["elevation"]
    save(norm(dem), cat, "dem_grey", "digital elevation model as grey image (mpl sample)", "png")
    tb = np.load(os.path.join(SAMPLE, "topobathy.npz"))["topo"]
    save(plt.get_cmap("terrain")(norm(resize(tb, 480)))[..., :3], cat, "topobathy",
         "topo-bathymetry map colour (mpl sample)", "png")
    mem = np.fromfile(os.path.join(SAMPLE, "membrane.dat"), dtype=np.float32)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.plot(mem[:2000])
    b = io.BytesIO()
    fig.savefig(b, format="png")
    plt.close(fig)
    save(Image.open(io.BytesIO(b.getvalue())).convert("RGB"), cat, "plot_membrane", "membrane voltage trace plot",
         "png")


# ----------------------------------------------------------------- medical (non brain MRI)
def cat_med_xray():
    rng = np.random.default_rng(808)
    cat = "med_xray"
    # chest X-rays
    for k in range(6):
        H, W = int(rng.choice([512, 600, 768])), int(rng.choice([512, 600, 700]))
        y, x = yx(H, W)
        body = (np.abs(x) < 0.92 - 0.15 * (y < -0.6) * (-y - 0.6) * 3).astype(float) * 0.55
        lungL = ellipse_mask(H, W, 0.55, 0.3, 0.0, -0.38) <= 1
        lungR = ellipse_mask(H, W, 0.58, 0.32, 0.03, 0.38) <= 1
        img = body - 0.35 * (lungL | lungR)
        heart = ellipse_mask(H, W, 0.3, 0.25, 0.25, -0.1) <= 1
        img = img + 0.25 * heart * (lungL | lungR | True) * (np.abs(x) < 0.4)
        img += 0.35 * (np.abs(x) < 0.07)  # spine
        for r in range(10):  # ribs
            yc = -0.65 + r * 0.13
            for side in (-1, 1):
                arc = np.abs(y - (yc + 0.25 * (x * side) ** 2 * 1.3)) < 0.018
                img += 0.18 * arc * (side * x > 0.07) * (side * x < 0.85)
        clav = np.abs(y - (-0.72 + 0.15 * np.abs(x))) < 0.025
        img += 0.25 * clav * (np.abs(x) < 0.6)
        img = ndi.gaussian_filter(img, 3) + 0.05 * fbm(H, W, beta=2.5, seed=2000 + k)
        img = norm(img)
        if k % 3 == 2:
            img = 1 - img
        save(img, cat, f"chest{k}", "synthetic chest X-ray (PA)" + (" inverted" if k % 3 == 2 else ""),
             "png" if k % 2 else "jpg")
    # hand X-rays
    for k in range(4):
        H, W = 640, 520
        im = Image.new("L", (W, H), 10)
        d = ImageDraw.Draw(im)
        d.ellipse([140, 300, 400, 620], fill=90)  # palm
        d.rectangle([180, 500, 350, 640], fill=90)  # wrist
        fingers = [(150, 80), (205, 40), (260, 30), (315, 50), (380, 240)]
        for j, (fx, fy) in enumerate(fingers):
            w = 42
            d.rounded_rectangle([fx, fy, fx + w, 380], radius=20, fill=90)
            seg = np.linspace(fy + 10, 370, 4)
            for s in range(3):
                d.rounded_rectangle([fx + 10, seg[s] + 4, fx + w - 10, seg[s + 1] - 4], radius=6, fill=200)
            d.rounded_rectangle([fx + 8, 380, fx + w - 8, 500], radius=6, fill=200)
        for c in range(8):
            x0, y0 = 200 + (c % 4) * 35, 505 + (c // 4) * 35
            d.ellipse([x0, y0, x0 + 30, y0 + 30], fill=190)
        d.rectangle([200, 570, 250, 640], fill=210)
        d.rectangle([270, 570, 330, 640], fill=210)
        a = ndi.gaussian_filter(f01(np.array(im)), 2) + 0.04 * rng.normal(size=(H, W))
        if k % 2:
            a = ndi.rotate(a, 17 * k, reshape=False, order=1)
        save(np.clip(a, 0, 1), cat, f"hand{k}", "synthetic hand X-ray (bones bright on dark)",
             "png" if k % 2 else "jpg")
    # dental panoramic and bitewing
    for k in range(4):
        H, W = (300, 700) if k < 2 else (300, 400)
        y, x = yx(H, W)
        img = 0.25 + 0.1 * fbm(H, W, beta=3, seed=2100 + k)
        for arch, yc in ((-1, -0.25), (1, 0.25)):
            for t in range(14 if k < 2 else 5):
                tx = -0.85 + t * (1.7 / (13 if k < 2 else 4))
                tooth = ellipse_mask(H, W, 0.22, 0.055 if k < 2 else 0.15, yc + arch * 0.05 * tx ** 2, tx) <= 1
                root = ellipse_mask(H, W, 0.35, 0.025 if k < 2 else 0.06, yc + arch * 0.35, tx) <= 1
                img += 0.4 * tooth + 0.2 * root
                if rng.random() < 0.2:
                    img += 0.4 * (ellipse_mask(H, W, 0.06, 0.03, yc, tx) <= 1)  # filling
        img = ndi.gaussian_filter(np.clip(img, 0, 1), 1.5)
        save(img, cat, f"dental{k}", "synthetic dental " + ("panoramic" if k < 2 else "bitewing") + " X-ray",
             "png" if k % 2 else "jpg")
    # mammograms
    for k in range(4):
        H, W = 640, 480
        y, x = yx(H, W)
        side = -1 if k % 2 else 1
        m = ((x * side + 1.0) / 1.5) ** 2 + (y / 0.85) ** 2 <= 1
        tissue = 0.35 + 0.45 * fbm(H, W, beta=2.8, seed=2200 + k) * np.exp(-((x * side + 1) / 1.2) ** 2)
        img = ndi.gaussian_filter(m.astype(float), 4) * tissue
        img += 0.05 * rng.normal(size=(H, W)) * m
        if k == 3:
            img += 0.6 * (ellipse_mask(H, W, 0.05, 0.05, 0.1, -0.4 * side) <= 1)
        save(np.clip(img, 0, 1), cat, f"mammo{k}", "synthetic mammogram (breast on black)", "png" if k % 2 else "jpg")
    # knee / spine X-ray
    for k in range(2):
        H, W = 600, 400
        y, x = yx(H, W)
        soft = (np.abs(x) < 0.7) * 0.35
        fem = (np.abs(x) < 0.28 - 0.15 * np.clip(y + 0.2, 0, 1)) * (y < -0.05)
        cond = ellipse_mask(H, W, 0.15, 0.42, -0.1, 0) <= 1
        tib = (np.abs(x) < 0.3 - 0.1 * np.clip(0.5 - y, 0, 1)) * (y > 0.08)
        img = soft + 0.45 * (fem | cond | tib)
        if k:
            img = 0.2 * (np.abs(x) < 0.8)
            for v in range(8):
                img += 0.5 * (ellipse_mask(H, W, 0.09, 0.25, -0.85 + v * 0.24, 0.02 * v) <= 1)
        save(ndi.gaussian_filter(img, 3) + 0.03 * rng.normal(size=(H, W)), cat, f"{'spine' if k else 'knee'}_xray",
             f"synthetic {'lumbar spine' if k else 'knee'} X-ray", "png")
    # skull X-ray lateral (radiograph, not MRI)
    H = W = 512
    y, x = yx(H, W)
    e = ellipse_mask(H, W, 0.7, 0.85, -0.1, 0)
    img = 0.3 * (e <= 1) + 0.5 * (np.abs(np.sqrt(e) - 1) < 0.05)
    img += 0.3 * (ellipse_mask(H, W, 0.25, 0.3, 0.65, 0.25) <= 1)  # jaw
    img = ndi.gaussian_filter(img, 4) + 0.15 * fbm(H, W, beta=3, seed=2300)
    save(img, cat, "skull_lateral", "synthetic lateral skull X-ray", "jpg")
    # skull X-ray AP
    e = ellipse_mask(H, W, 0.75, 0.65, -0.05, 0)
    img = 0.3 * (e <= 1) + 0.45 * (np.abs(np.sqrt(e) - 1) < 0.06)
    img += 0.25 * ((ellipse_mask(H, W, 0.12, 0.15, 0.2, -0.3) <= 1) | (ellipse_mask(H, W, 0.12, 0.15, 0.2, 0.3) <= 1))
    img = ndi.gaussian_filter(img, 4) + 0.1 * fbm(H, W, beta=3, seed=2301)
    save(img, cat, "skull_ap", "synthetic AP skull X-ray (orbits, bright vault)", "png")


def mri_noise(img, rng, s=0.02):
    return np.sqrt((img + rng.normal(0, s, img.shape)) ** 2 + rng.normal(0, s, img.shape) ** 2)


def cat_med_mri_body():
    """MRI-looking but not brain: knee, spine, abdomen, pelvis, shoulder, heart"""
    rng = np.random.default_rng(909)
    cat = "med_mri_body"
    for k in range(5):  # knee sagittal
        n = int(rng.choice([256, 320, 512]))
        y, x = yx(n, n)
        leg = (np.abs(x + 0.05 * y) < 0.7)
        fat = leg & (np.abs(x + 0.05 * y) > 0.6)
        img = 0.35 * leg + 0.5 * fat
        fem = ((np.abs(x + 0.1) < 0.32) & (y < -0.1)) | (ellipse_mask(n, n, 0.22, 0.4, -0.12, -0.05) <= 1)
        tib = (np.abs(x) < 0.35) & (y > 0.12)
        pat = ellipse_mask(n, n, 0.18, 0.07, -0.2, 0.5) <= 1
        bone = fem | tib | pat
        img = np.where(bone, 0.7 + 0.1 * fbm(n, beta=2, seed=2400 + k), img)
        cart = (ellipse_mask(n, n, 0.25, 0.43, -0.12, -0.05) <= 1) & ~fem & (y > -0.05)
        img = np.where(cart, 0.55, img)
        menisc = (np.abs(y - 0.1) < 0.03) & (np.abs(x) > 0.1) & (np.abs(x) < 0.4)
        img = np.where(menisc, 0.05, img)
        img = ndi.gaussian_filter(img, 1.2)
        if k % 2:
            img = np.where(bone, 0.35, img)  # PD-FS like
        img = mri_noise(img, rng)
        save(img, cat, f"knee_sag{k}", "MRI-like sagittal knee (femur, tibia, patella, fat)", "png" if k % 2 else "jpg")
    for k in range(5):  # spine sagittal
        n = int(rng.choice([256, 384, 512]))
        H, W = n, int(n * 0.8)
        y, x = yx(H, W)
        body = np.abs(x + 0.1) < 0.85
        img = 0.3 * body + 0.2 * body * (x > 0.45)
        for v in range(7):
            yc = -0.9 + v * 0.28
            vb = (np.abs(y - yc) < 0.1) & (np.abs(x + 0.25) < 0.22)
            disc = (np.abs(y - yc - 0.14) < 0.035) & (np.abs(x + 0.25) < 0.2)
            img = np.where(vb, 0.55, img)
            img = np.where(disc, 0.8 if k % 2 else 0.25, img)
        canal = np.abs(x - 0.08) < 0.09
        img = np.where(canal, 0.85 if k % 2 else 0.15, img)
        cord = np.abs(x - 0.08) < 0.04
        img = np.where(cord & (y < 0.3), 0.4, img)
        img = mri_noise(ndi.gaussian_filter(img, 1), rng)
        save(img, cat, f"spine_sag{k}", f"MRI-like sagittal spine ({'T2' if k % 2 else 'T1'})", "png")
    for k in range(5):  # abdomen axial MRI
        n = int(rng.choice([256, 320, 448]))
        y, x = yx(n, n)
        e = ellipse_mask(n, n, 0.62, 0.92, 0.05, 0)
        img = 0.75 * (e <= 1)  # subcutaneous fat bright T1
        inner = ellipse_mask(n, n, 0.54, 0.84, 0.05, 0) <= 1
        img = np.where(inner, 0.35, img)
        liver = ellipse_mask(n, n, 0.35, 0.35, -0.05, -0.35) <= 1
        img = np.where(liver & inner, 0.5, img)
        for s in (-1, 1):
            kid = ellipse_mask(n, n, 0.12, 0.08, 0.3, 0.3 * s) <= 1
            img = np.where(kid, 0.6, img)
        vert = ellipse_mask(n, n, 0.1, 0.1, 0.42, 0) <= 1
        img = np.where(vert, 0.45, img)
        img = np.where(ellipse_mask(n, n, 0.04, 0.04, 0.25, 0.07) <= 1, 0.0, img)
        img = mri_noise(ndi.gaussian_filter(img, 1), rng, 0.03)
        save(img, cat, f"abdomen_ax{k}", "MRI-like axial abdomen (wide ellipse, liver, kidneys, spine)",
             "png" if k % 2 else "jpg")
    for k in range(3):  # pelvis / thigh axial
        n = 320
        y, x = yx(n, n)
        img = np.zeros((n, n))
        for s in (-1, 1):
            th = ellipse_mask(n, n, 0.45, 0.38, 0, 0.45 * s)
            img = np.where(th <= 1, 0.7, img)
            img = np.where(ellipse_mask(n, n, 0.38, 0.32, 0, 0.45 * s) <= 1,
                           0.35 + 0.1 * fbm(n, beta=3, seed=2500 + k), img)
            img = np.where(ellipse_mask(n, n, 0.08, 0.08, 0, 0.45 * s) <= 1, 0.1, img)
        img = mri_noise(ndi.gaussian_filter(img, 1), rng)
        save(img, cat, f"thighs_ax{k}", "MRI-like axial thighs (two round limbs with femurs)", "png")
    for k in range(3):  # cardiac short axis
        n = 256
        y, x = yx(n, n)
        img = 0.3 * (ellipse_mask(n, n, 0.65, 0.9) <= 1)
        img = np.where(ellipse_mask(n, n, 0.25, 0.25, 0, 0.1) <= 1, 0.4, img)
        img = np.where(ellipse_mask(n, n, 0.15, 0.15, 0, 0.1) <= 1, 0.9, img)
        img = np.where(ellipse_mask(n, n, 0.35, 0.3, 0.3, -0.3) <= 1, 0.05, img)  # lung
        img = np.where(ellipse_mask(n, n, 0.35, 0.3, -0.2, -0.5) <= 1, 0.05, img)
        img = mri_noise(ndi.gaussian_filter(img, 1.5), rng)
        save(img, cat, f"cardiac_sax{k}", "cardiac MRI-like short axis (bright blood pool ring)", "png")
    for k in range(3):  # shoulder coronal
        n = 300
        y, x = yx(n, n)
        img = 0.35 * (x > -0.7)
        img = np.where(ellipse_mask(n, n, 0.3, 0.3, -0.1, 0.1) <= 1, 0.65, img)
        img = np.where((np.abs(x - 0.1) < 0.15) & (y > 0.1), 0.65, img)
        img = np.where(np.abs(y + 0.5 + 0.3 * x) < 0.04, 0.65, img)
        img = mri_noise(ndi.gaussian_filter(img, 1.2), rng)
        save(img, cat, f"shoulder_cor{k}", "MRI-like coronal shoulder (humeral head)", "jpg")


def ct_window(hu, wl=40, ww=400):
    return np.clip((hu - (wl - ww / 2)) / ww, 0, 1)


def cat_med_ct():
    rng = np.random.default_rng(1010)
    cat = "med_ct"
    for k in range(6):  # abdominal CT
        n = int(rng.choice([256, 512]))
        y, x = yx(n, n)
        hu = np.full((n, n), -1000.0)
        body = ellipse_mask(n, n, 0.6, 0.9, 0.05, 0) <= 1
        hu[body] = -100  # fat
        inner = ellipse_mask(n, n, 0.5, 0.8, 0.05, 0) <= 1
        hu[inner] = 40
        hu[(ellipse_mask(n, n, 0.35, 0.38, -0.05, -0.35) <= 1)] = 60  # liver
        hu[(ellipse_mask(n, n, 0.15, 0.12, -0.1, 0.45) <= 1)] = 45  # spleen
        for s in (-1, 1):
            hu[ellipse_mask(n, n, 0.12, 0.08, 0.3, 0.3 * s) <= 1] = 150  # kidneys contrast
        vb = ellipse_mask(n, n, 0.1, 0.1, 0.4, 0)
        hu[vb <= 1] = 300
        hu[np.abs(np.sqrt(vb) - 1) < 0.15] = 900
        hu[ellipse_mask(n, n, 0.04, 0.04, 0.25, 0.07) <= 1] = 200  # aorta
        for g in range(6):
            cy, cx = rng.uniform(-0.3, 0.2), rng.uniform(-0.2, 0.4)
            hu[ellipse_mask(n, n, 0.04, 0.05, cy, cx) <= 1] = -900  # bowel gas
        hu[(np.abs(y - 0.75 + 0.08 * x ** 2) < 0.025) & (np.abs(x) < 0.95)] = 300  # curved table
        hu = ndi.gaussian_filter(hu, 1) + rng.normal(0, 15, hu.shape)
        save(ct_window(hu), cat, f"abdomen{k}", "CT-like axial abdomen, soft-tissue window, with table",
             "png" if k % 2 else "jpg")
    for k in range(4):  # chest CT lung window
        n = 512
        y, x = yx(n, n)
        hu = np.full((n, n), -1000.0)
        hu[ellipse_mask(n, n, 0.55, 0.9, 0.05, 0) <= 1] = 30
        for s in (-1, 1):
            lung = ellipse_mask(n, n, 0.45, 0.35, 0.0, 0.42 * s) <= 1
            hu[lung] = -850 + 80 * fbm(n, beta=2, seed=2600 + k)[lung]
        hu[ellipse_mask(n, n, 0.08, 0.08, 0.42, 0) <= 1] = 700
        hu = ndi.gaussian_filter(hu, 1) + rng.normal(0, 20, hu.shape)
        save(ct_window(hu, -600, 1500), cat, f"chest_lung{k}", "CT-like axial chest, lung window", "png")
    # CT heads: the brief's "CT-style head": bright skull ring, flat grey brain
    for k in range(8):
        n = int(rng.choice([256, 512]))
        y, x = yx(n, n)
        ry, rx = rng.uniform(0.78, 0.9), rng.uniform(0.62, 0.74)
        e = ellipse_mask(n, n, ry, rx)
        hu = np.full((n, n), -1000.0)
        hu[e <= 1.08] = 30  # scalp
        hu[e <= 1] = 1200  # bone
        brain = ellipse_mask(n, n, ry - 0.07, rx - 0.07) <= 1
        hu[brain] = 32 + (k % 2) * 6 * (fbm(n, beta=3, seed=2700 + k)[brain] - 0.5)
        if k >= 2:
            for s in (-1, 1):  # ventricles
                hu[ellipse_mask(n, n, 0.18, 0.05, -0.05, 0.08 * s, 0.3 * s) <= 1] = 5
        if k >= 4:  # grey-white differentiation + sulci CSF
            t = smooth_noise(n, 2750 + k, 0.035)
            sulc = (np.abs(((t * 12) % 1) - 0.5) > 0.45) & brain & (e > 0.55)
            hu[sulc] = 8
        if k == 6:
            hu[ellipse_mask(n, n, 0.12, 0.1, -0.2, 0.3) <= 1] = 70  # bleed
        hu = ndi.gaussian_filter(hu, 0.8) + rng.normal(0, 3, hu.shape)
        img = ct_window(hu, 40, 80)  # brain window: skull saturated white
        if k == 7:
            img = ct_window(hu, 400, 2000)  # bone window
        if k == 5:
            img = ndi.rotate(img, 23, reshape=False, order=1)
        save(img, cat, f"head_ct{k}", "CT-style axial head, bright skull ring, flat grey brain" +
             [" (plain)", " (textured brain)", " + ventricles", " + ventricles", " + sulci", " + sulci rotated 23deg",
              " + haemorrhage", " bone window"][k], "png" if k % 2 else "jpg")
    for k in range(3):  # CT head in 8-bit colour (RGB) and with table/headrest
        n = 512
        y, x = yx(n, n)
        e = ellipse_mask(n, n, 0.8, 0.68, -0.05, 0)
        img = np.zeros((n, n))
        img[e <= 1.05] = 0.55
        img[np.abs(np.sqrt(e) - 1) < 0.04] = 1.0
        img += 0.6 * ((np.abs(y - 0.85) < 0.03) & (np.abs(x) < 0.7))  # headrest
        img = np.clip(img + 0.02 * rng.normal(size=img.shape), 0, 1)
        if k == 1:
            img = np.stack([img] * 3, -1)
        if k == 2:
            d = ImageDraw.Draw(im := Image.fromarray(to_u8(img)))
            d.text((10, 10), "CT HEAD W:80 L:40\n2026-01-01\nSE 2 IM 14", font=font(16), fill=255)
            img = f01(np.array(im))
        save(img, cat, f"head_ct_ui{k}", "CT head with headrest" + ["", " RGB", " + burned-in text"][k], "png")
    # Shepp-Logan phantom (CT phantom)
    sl = skd.shepp_logan_phantom()
    save(sl, cat, "shepp_logan", "Shepp-Logan head phantom (CT test object)", "png")
    save(resize(sl, 128), cat, "shepp_logan_128", "Shepp-Logan phantom 128 px", "jpg")
    from skimage.transform import radon, iradon
    th = np.linspace(0, 180, 60, endpoint=False)
    rec = iradon(radon(resize(sl, 200), th), th)
    save(norm(rec), cat, "shepp_logan_fbp", "Shepp-Logan filtered back-projection with streak artefacts", "png")


def fan_mask(H, W, apex_y=0.02, ang=np.deg2rad(35), r0=0.08, r1=0.95):
    y, x = np.mgrid[0:H, 0:W].astype(float)
    yy = (y / H - apex_y)
    xx = (x - W / 2) / H
    r = np.sqrt(yy ** 2 + xx ** 2)
    th = np.arctan2(xx, yy)
    return (np.abs(th) < ang) & (r > r0) & (r < r1), r, th


def cat_med_us():
    rng = np.random.default_rng(1111)
    cat = "med_us"
    for k in range(6):  # abdominal / obstetric ultrasound fans
        H, W = int(rng.choice([400, 480, 600])), int(rng.choice([500, 640, 800]))
        m, r, th = fan_mask(H, W, ang=np.deg2rad(rng.uniform(28, 45)))
        speck = rng.rayleigh(0.25, (H, W))
        speck = ndi.gaussian_filter(speck, (1.5, 0.6))
        tissue = 0.4 + 0.4 * fbm(H, W, beta=3, seed=2800 + k)
        img = speck * tissue * m
        # dark cyst/organ
        cy, cx = rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.65)
        yy, xx = np.mgrid[0:H, 0:W]
        cyst = ((yy / H - cy) / 0.12) ** 2 + ((xx / W - cx) / 0.1) ** 2 < 1
        img[cyst] *= 0.1
        img *= np.clip(1.3 - r, 0.3, 1)
        img = np.clip(img, 0, 1)
        im = Image.fromarray(to_u8(img))
        d = ImageDraw.Draw(im)
        d.text((10, 10), f"GE LOGIQ  C1-5  {rng.integers(3, 18)}cm", font=font(14), fill=220)
        for t in range(5):
            d.text((W - 30, 40 + t * (H - 60) // 5), "-", font=font(14), fill=200)
        save(im, cat, f"us_fan{k}", "ultrasound sector fan with speckle, dark cyst, text overlay",
             "png" if k % 2 else "jpg")
    for k in range(4):  # echocardiography
        H, W = 480, 640
        m, r, th = fan_mask(H, W, ang=np.deg2rad(40))
        speck = ndi.gaussian_filter(rng.rayleigh(0.3, (H, W)), (1.2, 0.8))
        img = speck * m * 0.8
        yy, xx = np.mgrid[0:H, 0:W]
        for (cy, cx, ry, rx) in [(0.4, 0.42, 0.16, 0.08), (0.4, 0.58, 0.14, 0.07), (0.72, 0.44, 0.1, 0.08),
                                 (0.72, 0.58, 0.1, 0.07)]:
            ch = ((yy / H - cy) / ry) ** 2 + ((xx / W - cx) / rx) ** 2 < 1
            img[ch] *= 0.08
        img = np.clip(img, 0, 1)
        rgb = np.stack([img] * 3, -1)
        if k % 2:  # colour Doppler jet
            jet = ((yy / H - 0.55) / 0.08) ** 2 + ((xx / W - 0.45) / 0.03) ** 2 < 1
            rgb[jet] = [0.9, 0.2, 0.1]
            jet2 = ((yy / H - 0.55) / 0.08) ** 2 + ((xx / W - 0.58) / 0.03) ** 2 < 1
            rgb[jet2] = [0.1, 0.3, 0.95]
        im = Image.fromarray(to_u8(rgb))
        d = ImageDraw.Draw(im)
        d.text((10, 10), "A4C  HR 72  FR 48Hz", font=font(14), fill=(0, 230, 0))
        d.line([(20, H - 30), (W - 20, H - 30)], fill=(0, 200, 0), width=1)
        xs = np.arange(20, W - 20)
        ecg = H - 30 - 15 * np.exp(-((xs % 120) - 60) ** 2 / 8.0)
        d.line(list(zip(xs.tolist(), ecg.tolist())), fill=(0, 230, 0), width=1)
        save(im, cat, f"echo{k}",
             "echocardiography apical 4-chamber fan" + (" with colour Doppler" if k % 2 else "") + ", ECG trace",
             "png" if k % 2 else "jpg")
    for k in range(3):  # linear probe (rectangular) ultrasound
        H, W = 400, 400
        speck = ndi.gaussian_filter(rng.rayleigh(0.25, (H, W)), (1.5, 0.6))
        layers = 0.3 + 0.5 * (np.sin(np.linspace(0, 12, H))[:, None] > 0.7)
        img = np.clip(speck * layers, 0, 1)
        img[:, :40] = 0
        img[:, -40:] = 0
        save(img, cat, f"us_linear{k}", "linear-probe ultrasound (rectangular speckle, layered)", "png")
    # fetal head ultrasound - ellipse (brain-like!) in fan
    for k in range(3):
        H, W = 480, 640
        m, r, th = fan_mask(H, W, ang=np.deg2rad(38))
        speck = ndi.gaussian_filter(rng.rayleigh(0.18, (H, W)), (1.2, 0.6))
        yy, xx = np.mgrid[0:H, 0:W]
        e = ((yy / H - 0.5) / 0.22) ** 2 + ((xx / W - 0.5) / 0.2) ** 2
        img = speck * (0.5 + 1.8 * (np.abs(np.sqrt(e) - 1) < 0.06)) * m
        img[(np.abs(xx / W - 0.5) < 0.004) & (e < 0.8)] = 0.8  # midline echo
        save(np.clip(img, 0, 1), cat, f"us_fetalhead{k}",
             "fetal head ultrasound: bright elliptical skull echo with midline in fan", "png")


def cat_med_other():
    plt = _pyplot()
    rng = np.random.default_rng(1212)
    cat = "med_other"
    # retina / fundus: skimage + synthetic
    ret = skd.retina()
    save(resize(ret, 700), cat, "fundus_sk", "retinal fundus photo (skimage) colour", "jpg")
    save(resize(gray(ret), 512), cat, "fundus_sk_grey", "retinal fundus photo greyscale", "png")
    save(resize(ret[..., 1], 400), cat, "fundus_sk_green", "fundus green channel (grey disc, vessels) ", "png")
    save(1 - resize(gray(ret), 300) * (ellipse_mask(300, 300, 0.95, 0.95) <= 1), cat, "fundus_inv",
         "inverted greyscale fundus", "jpg")
    for k in range(4):
        n = int(rng.choice([384, 512]))
        y, x = yx(n, n)
        r = np.sqrt(x ** 2 + y ** 2)
        base = (r < 0.92) * (0.75 - 0.3 * r ** 2) * (0.9 + 0.1 * fbm(n, beta=2.5, seed=2900 + k))
        disc = ellipse_mask(n, n, 0.12, 0.1, 0, 0.35) <= 1
        ves = np.zeros((n, n))
        for v in range(8):
            t = np.linspace(0, 1, 300)
            a0 = rng.uniform(0, 2 * np.pi)
            px = 0.35 + t * np.cos(a0 + 1.5 * t * rng.uniform(-1, 1)) * 0.9
            py = t * np.sin(a0 + 1.5 * t * rng.uniform(-1, 1)) * 0.9
            ii = ((py + 1) * n / 2).astype(int)
            jj = ((px + 1) * n / 2).astype(int)
            ok = (ii >= 0) & (ii < n) & (jj >= 0) & (jj < n)
            ves[ii[ok], jj[ok]] = 1
        ves = ndi.gaussian_filter(ndi.binary_dilation(ves, iterations=2).astype(float), 1)
        g = np.clip(base - 0.35 * ves + 0.4 * disc, 0, 1) * (r < 0.92)
        rgb = np.stack([g, g * 0.45, g * 0.15], -1)
        save(rgb if k < 3 else g, cat, f"fundus_syn{k}",
             "synthetic fundus: orange disc, vessels, optic disc" + (" (grey)" if k == 3 else ""),
             "png" if k % 2 else "jpg")
    save(resize(skd.microaneurysms(), 256), cat, "microaneurysms", "retinal microaneurysm crop (skimage)", "png")
    # histology
    ihc = skd.immunohistochemistry()
    save(ihc, cat, "ihc", "immunohistochemistry slide (skimage)", "jpg")
    save(gray(ihc), cat, "ihc_grey", "IHC slide greyscale", "png")
    a, d = augment(f01(ihc), np.random.default_rng(11), 2)
    save(clamp_size(a, rng), cat, "ihc_aug", f"IHC slide {d}", "png")
    for k in range(4):
        n = 512
        bg = np.ones((n, n, 3)) * np.array([0.95, 0.85, 0.9])
        eos = fbm(n, beta=2.5, seed=3000 + k)
        img = bg - (eos[..., None] > 0.5) * np.array([0.05, 0.35, 0.15])
        pts = rng.random((int(rng.integers(150, 500)), 2)) * n
        yy, xx = np.mgrid[0:n, 0:n]
        t = cKDTree(pts)
        dist, _ = t.query(np.stack([yy.ravel(), xx.ravel()], 1))
        nuc = (dist.reshape(n, n) < rng.uniform(4, 9))
        img[nuc] = [0.35, 0.2, 0.55]
        img = ndi.gaussian_filter(img, (1, 1, 0))
        save(img if k < 3 else gray(img), cat, f"histo_he{k}",
             "synthetic H&E histology (pink stroma, purple nuclei)" + (" grey" if k == 3 else ""),
             "jpg" if k % 2 else "png")
    # skimage cell & coins-like microscopy already in photos; fluorescence microscopy
    for k in range(3):
        n = 400
        img = np.zeros((n, n, 3))
        pts = rng.random((60, 2)) * n
        yy, xx = np.mgrid[0:n, 0:n]
        for (py, px) in pts:
            rr = rng.uniform(6, 14)
            img[..., 2] += np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * rr ** 2))
            img[..., 1] += 0.5 * np.exp(-((yy - py - 5) ** 2 + (xx - px + 4) ** 2) / (2 * (rr * 2) ** 2))
        img = np.clip(img, 0, 1)
        save(img if k < 2 else img[..., 2], cat, f"fluor{k}",
             "fluorescence microscopy nuclei (blue/green on black)" + (" single channel" if k == 2 else ""), "png")
    # PET-like blobby heads (smooth)
    for k in range(6):
        n = int(rng.choice([128, 200, 256]))
        y, x = yx(n, n)
        head = ellipse_mask(n, n, 0.8, 0.66)
        act = 0.3 * (head <= 1)
        cortex = (head <= 1) & (head > 0.55)
        act = act + 0.5 * cortex
        for s in (-1, 1):
            act += 0.6 * (ellipse_mask(n, n, 0.12, 0.07, 0.0, 0.18 * s) <= 1)  # basal ganglia
        act += 0.4 * (ellipse_mask(n, n, 0.15, 0.25, 0.55, 0) <= 1)
        if k >= 3:
            act += 1.0 * (ellipse_mask(n, n, 0.1, 0.1, -0.3, 0.3) <= 1)  # hot lesion
        act = ndi.gaussian_filter(act, n / 30) + 0.03 * rng.normal(size=(n, n))
        act = norm(np.clip(act, 0, None))
        if k % 3 == 0:
            img = act
            desc = "grey"
        elif k % 3 == 1:
            img = plt.get_cmap("hot")(act)[..., :3]
            desc = "hot colormap"
        else:
            img = plt.get_cmap("jet" if k == 2 else "inferno")(act)[..., :3]
            desc = "jet" if k == 2 else "inferno"
        save(img, cat, f"pet_head{k}",
             f"PET-like smooth blobby axial head ({desc})" + (" with hot spot" if k >= 3 else ""), "png")
    # SPECT/bone scan whole body
    H, W = 600, 250
    y, x = yx(H, W)
    body = (ellipse_mask(H, W, 0.12, 0.3, -0.82, 0) <= 1) | ((np.abs(x) < 0.5) & (y > -0.7) & (y < 0.1)) | \
           ((np.abs(np.abs(x) - 0.25) < 0.2) & (y >= 0.1))
    act = ndi.gaussian_filter(body.astype(float), 4) * 0.5 + 0.03 * rng.normal(size=(H, W))
    save(1 - np.clip(act, 0, 1), cat, "bone_scan", "whole-body nuclear bone scan (dark silhouette on white)", "png")
    # dermatoscopy-like (skin lesion)
    n = 400
    y, x = yx(n, n)
    skin = np.stack([0.85, 0.65, 0.55]) * np.ones((n, n, 3))
    les = shape_mask(n, n, "blob", rng, 2) * (0.6 + 0.4 * fbm(n, beta=3, seed=3100))
    img = skin * (1 - 0.7 * les[..., None])
    img = vignette(img, 1.8)
    save(img, cat, "dermoscopy", "dermoscopy skin lesion with circular vignette", "jpg")
    # endoscopy-like
    img = np.stack([0.8, 0.35, 0.3]) * (0.4 + 0.6 * fbm(n, beta=3, seed=3200))[..., None]
    r = np.sqrt(x ** 2 + y ** 2)
    img *= (r < 0.95)[..., None] * np.clip(1.2 - r, 0, 1)[..., None]
    img[(r < 0.2)] *= 0.2
    save(img, cat, "endoscopy", "endoscopy-like pink lumen in circle on black", "jpg")
    # angiography (DSA)
    n = 512
    ves = np.zeros((n, n))
    for v in range(30):
        p = rng.uniform(0, n, 2)
        dirv = rng.normal(size=2)
        for s in range(200):
            dirv = dirv / np.linalg.norm(dirv) + rng.normal(0, 0.15, 2)
            p = p + dirv
            if (p < 0).any() or (p >= n).any():
                break
            ves[int(p[0]), int(p[1])] = 1
    ves = ndi.gaussian_filter(ndi.binary_dilation(ves, iterations=int(2)).astype(float), 1)
    save(1 - 0.7 * ves - 0.05 * rng.random((n, n)), cat, "angio_dsa",
         "digital subtraction angiography-like dark vessels on white", "png")


def smooth_noise(n, seed, frac=0.03):
    rng = np.random.default_rng(seed)
    return norm(ndi.gaussian_filter(rng.normal(size=(n, n)), n * frac, mode="wrap"))


def gyri_pattern(n, seed, scale=14):
    t = smooth_noise(n, seed, 0.035)
    return np.abs(((t * scale) % 1) - 0.5)  # 0 at contour lines


def cat_brain_decoy():
    rng = np.random.default_rng(1313)
    cat = "brain_decoy"
    # brain drawings (lateral view line art)
    for k in range(5):
        n = int(rng.choice([300, 400, 512]))
        y, x = yx(n, n)
        e = ellipse_mask(n, n, 0.55, 0.8, -0.05, 0)
        outline = np.abs(np.sqrt(e) - 1) < 0.015
        g = gyri_pattern(n, 3300 + k, 10) < 0.03
        cereb = ellipse_mask(n, n, 0.18, 0.25, 0.45, 0.45) <= 1
        cereb_lines = cereb & (np.sin(y * 90) > 0.85)
        stem = (np.abs(x - 0.15 - 0.1 * y) < 0.07) & (y > 0.4) & (y < 0.9)
        ink = outline | (g & (e < 1)) | cereb_lines | \
            (np.abs(np.sqrt(ellipse_mask(n, n, 0.18, 0.25, 0.45, 0.45)) - 1) < 0.03) | \
            (np.abs(np.abs(x - 0.15 - 0.1 * y) - 0.07) < 0.01) & (y > 0.4) & (y < 0.9)
        if k < 2:
            img = 1 - 0.9 * ink
            desc = "brain line drawing (lateral) black ink on white"
        elif k == 2:
            lobes = np.select([x < -0.25, (x < 0.2) & (y < -0.05), x < 0.2, True], [0, 1, 2, 3])
            cols = np.array([[0.9, 0.5, 0.5], [0.5, 0.8, 0.5], [0.5, 0.6, 0.9], [0.9, 0.85, 0.4]])
            img = np.ones((n, n, 3))
            inside = (e <= 1) | cereb | stem
            img[inside] = cols[lobes[inside]]
            img[ink] = 0
            desc = "coloured-lobe brain diagram (lateral) on white"
        elif k == 3:
            img = np.zeros((n, n))
            img[(e <= 1) | cereb | stem] = 0.8
            img[ink] = 0.2
            desc = "grey brain silhouette drawing (lateral) on black"
        else:
            img = np.zeros((n, n, 3))
            img[(e <= 1) | cereb | stem] = [0.95, 0.7, 0.75]
            img[ink] = [0.6, 0.3, 0.35]
            desc = "pink brain illustration (lateral) on black"
        save(img, cat, f"brain_drawing{k}", desc, "png" if k % 2 else "jpg")
    # top-view brain drawing (two hemispheres) - axial-ish cartoon
    for k in range(3):
        n = 400
        y, x = yx(n, n)
        hemis = (ellipse_mask(n, n, 0.85, 0.42, 0, -0.44) <= 1) | (ellipse_mask(n, n, 0.85, 0.42, 0, 0.44) <= 1)
        hemis &= np.abs(x) > 0.02
        g = gyri_pattern(n, 3400 + k, 12) < 0.04
        if k == 0:
            img = np.ones((n, n))
            img[hemis] = 0.85
            img[hemis & g] = 0.1
            desc = "top-view brain cartoon, grey with dark sulci on white"
        elif k == 1:
            img = np.zeros((n, n, 3))
            img[hemis] = [0.95, 0.65, 0.7]
            img[hemis & g] = [0.55, 0.25, 0.3]
            desc = "top-view pink brain cartoon on black"
        else:
            img = np.zeros((n, n))
            img[hemis] = 0.6
            img[hemis & g] = 0.2
            img = ndi.gaussian_filter(img, 1)
            desc = "top-view grey brain cartoon on black (gyri lines)"
        save(img, cat, f"brain_topview{k}", desc, "png")
    # brain in a jar render
    for k in range(3):
        H, W = 600, 450
        y, x = yx(H, W)
        bg = np.ones((H, W, 3)) * (np.array([0.2, 0.2, 0.25]) if k != 1 else np.array([0.9, 0.9, 0.88]))
        jar = (np.abs(x) < 0.7) & (y > -0.65) & (y < 0.85)
        img = bg.copy()
        glass = np.array([0.6, 0.75, 0.7]) * (0.8 + 0.2 * np.abs(x) / 0.7)[..., None]
        img[jar] = 0.5 * img[jar] + 0.5 * glass[jar]
        img[(np.abs(np.abs(x) - 0.7) < 0.02) & (y > -0.65) & (y < 0.85)] = [0.95, 0.95, 0.95]
        img[(y < -0.62) & (y > -0.8) & (np.abs(x) < 0.75)] = [0.3, 0.3, 0.3]  # lid
        br = ellipse_mask(H, W, 0.38, 0.55, 0.25, 0) <= 1
        g = gyri_pattern(H if H == W else max(H, W), 3500 + k, 12)[:H, :W] < 0.05
        img[br] = [0.85, 0.78, 0.65]
        img[br & g] = [0.55, 0.45, 0.35]
        img = ndi.gaussian_filter(img, (1, 1, 0))
        save(img, cat, f"brain_jar{k}",
             "render of a pale brain in a glass jar" + (" on light background" if k == 1 else " on dark background"),
             "jpg")
    # walnut-like
    for k in range(4):
        n = int(rng.choice([256, 384, 512]))
        y, x = yx(n, n)
        shell = ellipse_mask(n, n, 0.8, 0.68) <= 1
        g = gyri_pattern(n, 3600 + k, 9)
        tex = np.clip(g * 2.2, 0, 1) * 0.7 + 0.3
        tex *= shell * (1 - 0.5 * (np.abs(x) < 0.03))
        if k < 2:
            img = np.stack([tex * 0.65, tex * 0.45, tex * 0.25], -1)
            desc = "walnut-like brown wrinkled oval on black"
        else:
            img = tex
            desc = "walnut-like grey wrinkled oval on black"
        if k == 3:
            img = np.where(shell, img, 0.9)
            desc = "walnut-like grey wrinkled oval on white"
        save(img, cat, f"walnut{k}", desc, "jpg" if k % 2 else "png")
    # grey ellipse with gyri-like curves (the hardest decoys)
    for k in range(10):
        n = int(rng.choice([192, 256, 320, 512]))
        ry, rx = rng.uniform(0.78, 0.92), rng.uniform(0.62, 0.76)
        e = ellipse_mask(n, n, ry, rx, 0, 0, np.deg2rad(rng.uniform(-8, 8)))
        g = gyri_pattern(n, 3700 + k, float(rng.choice([8, 12, 16])))
        inside = e <= 1
        base = 0.45 + 0.1 * (k % 3)
        img = base * inside
        lines = g < float(rng.choice([0.03, 0.06]))
        img = np.where(inside & lines & (e < 0.95), 0.12 if k % 2 == 0 else 0.85, img)
        if k >= 4:  # central dark "ventricles"
            for s in (-1, 1):
                img = np.where(ellipse_mask(n, n, 0.2, 0.05, -0.05, 0.08 * s, 0.3 * s) <= 1, 0.05, img)
        if k >= 6:  # bright ring (scalp)
            img = np.where(np.abs(np.sqrt(e) - 1) < 0.04, 0.9, img)
        if k >= 8:  # smooth grey-white like blobs
            img = ndi.gaussian_filter(img, 1.5)
        img = img + 0.02 * rng.normal(size=img.shape) * inside
        if k == 9:
            img = ndi.rotate(img, 57, reshape=False, order=1)
        save(np.clip(img, 0, 1), cat, f"gyri_ellipse{k}", "grey ellipse on black with " +
             ("dark" if k % 2 == 0 else "bright") + " gyri-like curves" + (" + ventricles" if k >= 4 else "") +
             (" + bright rim" if k >= 6 else "") + (" blurred" if k >= 8 else "") + (" rotated 57" if k == 9 else ""),
             "png" if k % 2 else "jpg")
    # cauliflower / coral cross-section
    for k in range(2):
        n = 320
        y, x = yx(n, n)
        m = shape_mask(n, n, "blob", rng, 1) > 0.5
        f = fbm(n, beta=2.2, seed=3800 + k)
        img = (0.6 + 0.35 * (f > 0.5)) * m
        col = np.stack([img, img * 0.95, img * 0.8], -1) if k else img
        save(col, cat, f"cauliflower{k}", "cauliflower-like bumpy blob on black", "jpg")
    # coronal/sagittal brain silhouette drawing (cartoon of sagittal MRI schematic)
    n = 400
    y, x = yx(n, n)
    head = ellipse_mask(n, n, 0.85, 0.75) <= 1
    img = np.zeros((n, n))
    img[head] = 0.9
    img[ellipse_mask(n, n, 0.72, 0.64, -0.05, 0) <= 1] = 0.5
    img[(ellipse_mask(n, n, 0.1, 0.35, -0.05, 0) <= 1)] = 0.95  # corpus callosum arc
    save(img, cat, "schematic_head", "flat 3-tone schematic of head (ring, grey, bright band)", "png")
    # animal skull / mushroom cross-section: photograph-like cat face in ellipse (decoy of organic)
    # brain-coral like texture full-frame
    g = gyri_pattern(512, 3900, 20)
    save(np.clip(g * 3, 0, 1), cat, "braincoral_full", "brain-coral-like maze texture full frame", "jpg")
    # Jellyfish / bright ellipse gyri inverted on white
    e = ellipse_mask(320, 320, 0.85, 0.7)
    g = gyri_pattern(320, 3950, 12) < 0.05
    img = np.ones((320, 320))
    img[e <= 1] = 0.6
    img[(e <= 1) & g] = 0.9
    save(img, cat, "gyri_ellipse_on_white", "grey ellipse with gyri curves on WHITE background", "png")


def cat_dicom():
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid, MRImageStorage, CTImageStorage

    rng = np.random.default_rng(1414)
    cat = "dicom"
    d = os.path.join(OUT, cat)
    os.makedirs(d, exist_ok=True)

    def write(arr16, name, modality, body, desc, series_desc=""):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = MRImageStorage if modality == "MR" else CTImageStorage
        fm.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[name])
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = fm
        ds.SOPClassUID = fm.MediaStorageSOPClassUID
        ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[name, "st"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name, "se"])
        ds.Modality = modality
        ds.BodyPartExamined = body
        ds.SeriesDescription = series_desc
        ds.PatientName = "Probe^Three"
        ds.PatientID = "P3"
        ds.Rows, ds.Columns = arr16.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 3.0
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1] if "SAG" in series_desc else [1, 0, 0, 0, 1, 0]
        ds.PixelData = arr16.astype(np.uint16).tobytes()
        if modality == "CT":
            ds.RescaleIntercept = -1024
            ds.RescaleSlope = 1
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        p = os.path.join(d, name + ".dcm")
        pydicom.dcmwrite(p, ds, enforce_file_format=True)
        MANIFEST.append((f"{cat}/{name}.dcm", desc))

    # re-create body MRI images
    n = 256
    y, x = yx(n, n)
    leg = (np.abs(x) < 0.7)
    img = 0.35 * leg + 0.5 * (leg & (np.abs(x) > 0.6))
    fem = ((np.abs(x + 0.1) < 0.32) & (y < -0.1)) | (ellipse_mask(n, n, 0.22, 0.4, -0.12, -0.05) <= 1)
    tib = (np.abs(x) < 0.35) & (y > 0.12)
    img = np.where(fem | tib, 0.75, img)
    img = mri_noise(ndi.gaussian_filter(img, 1), rng)
    write(img * 3000, "mr_knee_sag", "MR", "KNEE", "DICOM MR, BodyPart KNEE, sagittal knee image", "SAG PD")
    write(img.T * 3000, "mr_knee_cor", "MR", "KNEE", "DICOM MR, BodyPart KNEE, transposed knee image", "COR PD")
    # spine
    H, W = 320, 256
    y, x = yx(H, W)
    img = 0.3 * (np.abs(x) < 0.85)
    for v in range(7):
        yc = -0.9 + v * 0.28
        img = np.where((np.abs(y - yc) < 0.1) & (np.abs(x + 0.25) < 0.22), 0.55, img)
    img = np.where(np.abs(x - 0.08) < 0.09, 0.85, img)
    img = mri_noise(ndi.gaussian_filter(img, 1), rng)
    write(img * 3000, "mr_lspine_sag", "MR", "LSPINE", "DICOM MR, BodyPart LSPINE, sagittal spine", "SAG T2")
    # abdomen
    n = 256
    y, x = yx(n, n)
    img = 0.75 * (ellipse_mask(n, n, 0.62, 0.92, 0.05, 0) <= 1)
    img = np.where(ellipse_mask(n, n, 0.54, 0.84, 0.05, 0) <= 1, 0.35, img)
    img = np.where(ellipse_mask(n, n, 0.35, 0.35, -0.05, -0.35) <= 1, 0.5, img)
    img = mri_noise(ndi.gaussian_filter(img, 1), rng)
    write(img * 3000, "mr_abdomen_ax", "MR", "ABDOMEN", "DICOM MR, BodyPart ABDOMEN, axial abdomen", "AX T1")
    # photo in an MR DICOM
    g = resize(gray(skd.camera()), 256, 256)
    write(g * 4000, "mr_camera_photo", "MR", "HEAD", "DICOM MR, BodyPart HEAD, but pixels are the cameraman photo",
          "AX T2")
    g = on_canvas(ndi.gaussian_filter(gray(skd.gravel()), 1.5), "ellipse", rng, 1, 256)
    write(g * 4000, "mr_gravel_ellipse", "MR", "BRAIN", "DICOM MR, BodyPart BRAIN, gravel texture in ellipse", "AX T2")
    # CT head DICOM (HU)
    n = 256
    e = ellipse_mask(n, n, 0.85, 0.7)
    hu = np.full((n, n), -1000.0)
    hu[e <= 1] = 1200
    hu[ellipse_mask(n, n, 0.78, 0.63) <= 1] = 35
    hu = hu + rng.normal(0, 4, hu.shape)
    write(hu + 1024, "ct_head", "CT", "HEAD", "DICOM CT, BodyPart HEAD, CT head in HU (skull ring)", "AX HEAD")
    # CT abdomen DICOM
    hu = np.full((n, n), -1000.0)
    hu[ellipse_mask(n, n, 0.6, 0.9, 0.05, 0) <= 1] = -100
    hu[ellipse_mask(n, n, 0.5, 0.8, 0.05, 0) <= 1] = 40
    hu[ellipse_mask(n, n, 0.1, 0.1, 0.4, 0) <= 1] = 700
    write(hu + rng.normal(0, 10, hu.shape) + 1024, "ct_abdomen", "CT", "ABDOMEN",
          "DICOM CT, BodyPart ABDOMEN, abdomen in HU", "AX ABD")


def cat_canvas_grid(srcs):
    """systematic grid: source texture/photo x brain-like canvas variant"""
    rng = np.random.default_rng(1616)
    cat = "canvas_grid"
    names = ["camera", "moon", "gravel", "grass", "brick", "coins", "grace_hopper", "chelsea",
             "astronaut", "motorcycle", "clock", "cell"]
    texs = {n: gray(srcs[n]) for n in names}
    texs["fbm"] = fbm(512, beta=2.5, seed=4000)
    pts = rng.random((150, 2)) * 512
    yy, xx = np.mgrid[0:512, 0:512]
    dd, _ = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1))
    texs["worley"] = norm(dd.reshape(512, 512))
    sizes = [192, 256, 384, 512]
    i = 0
    for name, g in texs.items():
        h, w = g.shape
        s = min(h, w)
        g = g[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        for v in "ABCD":
            n = sizes[i % 4]
            t = transform.resize(g, (n, n), anti_aliasing=True)
            ry, rx = rng.uniform(0.82, 0.92), rng.uniform(0.66, 0.76)
            e = ellipse_mask(n, n, ry, rx)
            if v == "A":
                img = ndi.gaussian_filter(t, 1.5) * (e <= 1)
                desc = "blurred, hard-edged ellipse, no rim"
            elif v == "B":
                m = ndi.gaussian_filter((e <= 1).astype(float), n / 100)
                img = (0.15 + 0.7 * ndi.gaussian_filter(t, 1.0)) * m
                img = np.maximum(img, 0.95 * (np.abs(np.sqrt(e) - 1) < 0.035))
                desc = "soft ellipse + bright rim"
            elif v == "C":
                m = ndi.gaussian_filter(shape_mask(n, n, "blob", rng, 0).astype(float), n / 100)
                img = (0.1 + 0.8 * t) * m
                ring = ndi.binary_dilation(m > 0.5, iterations=max(2, n // 60)) & ~(m > 0.5)
                img = np.maximum(img, 0.9 * ring)
                desc = "unblurred, soft blob + bright rim"
            else:
                img = (0.15 + 0.7 * ndi.gaussian_filter(t, 1.5)) * (e <= 1)
                for sgn in (-1, 1):
                    img = np.where(ellipse_mask(n, n, 0.2, 0.05, -0.05, 0.08 * sgn, 0.3 * sgn) <= 1, 0.04, img)
                img = np.maximum(img, 0.95 * (np.abs(np.sqrt(e) - 1) < 0.035))
                desc = "blurred ellipse + bright rim + dark ventricle pair"
            save(np.clip(img, 0, 1), cat, f"{name}_{v}", f"grey '{name}' {desc} on black", "png" if i % 2 else "jpg")
            i += 1


def extra_formats():
    """a few BMP/TIFF/GIF and odd sizes"""
    rng = np.random.default_rng(1515)
    cat = "misc_format"
    d = os.path.join(OUT, cat)
    g = gray(skd.camera())
    save(Image.fromarray(to_u8(resize(g, 300))), cat, "camera_bmp", "cameraman photo as BMP", "bmp")
    save(Image.fromarray(to_u8(resize(f01(skd.chelsea()), 400))), cat, "chelsea_tiff", "cat photo as TIFF", "tif")
    img16 = (resize(gray(skd.moon()), 256) * 65535).astype(np.uint16)
    save(Image.fromarray(img16), cat, "moon_16bit", "moon surface 16-bit PNG", "png")
    save(Image.fromarray(to_u8(resize(gray(skd.coins()), 64))), cat, "coins_64", "coins photo 64 px", "png")
    save(Image.fromarray(to_u8(resize(gray(skd.astronaut()), 1024))), cat, "astronaut_1024", "astronaut grey 1024 px",
         "jpg")
    save(Image.fromarray(to_u8(resize(gray(skd.page()), 1000, 120))), cat, "page_wide", "very wide strip of text page",
         "png")
    save(Image.fromarray(to_u8(resize(gray(skd.grass()), 900, 70))), cat, "grass_tall", "tall thin strip of grass",
         "png")
    pal = Image.fromarray(to_u8(resize(f01(skd.astronaut()), 256))).convert("P", palette=Image.ADAPTIVE, colors=16)
    save(pal, cat, "astronaut_palette16", "astronaut 16-colour palette PNG", "png")
    la = Image.fromarray(to_u8(resize(gray(skd.camera()), 256))).convert("LA")
    save(la, cat, "camera_LA", "cameraman grey+alpha PNG", "png")
    rgba = np.dstack([resize(f01(skd.coffee()), 300, 300), shape_mask(300, 300, "circle", rng, 2)])
    save(Image.fromarray(to_u8(rgba), "RGBA"), cat, "coffee_alpha_circle", "coffee cup RGBA with circular alpha mask",
         "png")
    # CMYK JPEG
    save(Image.fromarray(to_u8(resize(f01(skd.rocket()), 320))).convert("CMYK"), cat, "rocket_cmyk",
         "rocket photo CMYK JPEG", "jpg")
    # progressive JPEG of gravel in ellipse
    im = Image.fromarray(to_u8(on_canvas(gray(skd.gravel()), "ellipse", rng, 2, 300)))
    p = os.path.join(OUT, cat, "gravel_ellipse_progressive.jpg")
    im.save(p, quality=70, progressive=True)
    MANIFEST.append((f"{cat}/gravel_ellipse_progressive.jpg", "gravel texture in soft ellipse, progressive JPEG"))


# ------------------------------------------------------------------------------------------ generating
# group -> the categories it writes, each by its maker (in this order; each maker seeds its own generator)
GROUPS = {
    "photo": (cat_photo_gray, cat_photo_color, cat_photo_canvas),
    "canvas_grid": (cat_canvas_grid,),
    "collage": (cat_collage,),
    "texture": (cat_synth_texture,),
    "drawing": (cat_synth_drawing,),
    "document": (cat_documents,),
    "medical": (cat_med_xray, cat_med_mri_body, cat_med_ct, cat_med_us, cat_med_other),
    "decoy": (cat_brain_decoy,),
    "dicom": (cat_dicom,),
    "format": (extra_formats,),
}
NEEDS_PHOTOS = (cat_photo_gray, cat_photo_color, cat_photo_canvas, cat_canvas_grid, cat_collage)


def generate(out: str | os.PathLike, groups: tuple[str, ...] = tuple(GROUPS)) -> tuple[dict[str, int], list[str]]:
    """Write the probes of `groups` into out/<category>/ (out must be empty or absent) and their (file,
    description) list to out/manifest.csv; return the number of probes per category and notes on skipped
    sources. Each category seeds its own generator, so a subset writes the same files as the whole set."""
    global OUT
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown probe groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    os.makedirs(out, exist_ok=True)
    OUT = os.fspath(out)
    MANIFEST.clear()
    notes: list[str] = []
    makers = [m for g in GROUPS if g in groups for m in GROUPS[g]]
    # the order of the original generator (photo categories, canvas grid, collages, then the rest)
    order = [cat_photo_gray, cat_photo_color, cat_photo_canvas, cat_canvas_grid, cat_collage, cat_synth_texture,
             cat_synth_drawing, cat_documents, cat_med_xray, cat_med_mri_body, cat_med_ct, cat_med_us,
             cat_med_other, cat_brain_decoy, cat_dicom, extra_formats]
    makers.sort(key=order.index)
    srcs = None
    if any(m in NEEDS_PHOTOS for m in makers):
        srcs, skipped = photo_sources()
        if skipped:
            notes.append(f"scikit-learn is not installed: its sample photographs ({', '.join(skipped)}) were "
                         "skipped.")
    if cat_dicom in makers and importlib.util.find_spec("pydicom") is None:
        makers.remove(cat_dicom)
        notes.append("pydicom is not installed: the DICOM probes were skipped.")
    if not os.path.isfile(os.path.join(SYSTEM_FONTS, "DejaVuSans.ttf")):
        notes.append(f"the DejaVu fonts of {SYSTEM_FONTS} are absent: matplotlib's copies drew the text probes.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in makers:
            if m in NEEDS_PHOTOS:
                m(srcs)
            else:
                m()
    with open(os.path.join(OUT, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "description"])
        w.writerows(MANIFEST)
    return dict(Counter(m[0].split("/")[0] for m in MANIFEST)), notes


def read_manifest(folder: Path) -> dict[str, str]:
    with open(folder / "manifest.csv", newline="") as f:
        return {r["file"]: r["description"] for r in csv.DictReader(f)}


# ------------------------------------------------------------------------------------------- scoring
# -------------------------------------------------------------------------------------------- report
ABOUT = ("The set: {n} images that are not 2-D brain MRI slices, in {k} categories - grey and colour photographs "
         "(whole, edited, at very low JPEG quality), photographs and textures cut to brain-like shapes on black "
         "(`photo_canvas`, and `canvas_grid`: 14 sources x 4 canvas variants), collages, synthetic textures and "
         "drawings, documents, medical images of other body parts and modalities (X-ray, body MRI, CT, "
         "ultrasound, fundus, histology, PET ...), brain-like decoys (drawings, walnuts, grey ellipses with "
         "gyri-like curves), DICOM files that are not brain MRI and odd file formats. Sources: scikit-image's "
         "bundled data, scikit-learn's sample images, matplotlib's sample data (except its brain MRI, "
         "s1045.ima.gz) and images generated by the script, each category from its own fixed seed. "
         "It was built on 2026-11-28 by a helper as a blind probe set, after the look-alike detector of "
         "`tumorlens/lookalike.py` had been fitted and its settings fixed; nothing in the refusal was tuned on it. "
         "The `canvas_grid` category is systematic: the set's author added it after a first run showed masked "
         "photographs leaking, so the totals are given also without it.")


def report(rows: list[dict], command: str, model: str, sha256: str, threads: int, seconds: float,
           notes: list[str] = ()) -> str:
    """The Markdown report of scored probes (dicts as `score` returns them)."""
    cats = sorted({r["category"] for r in rows})
    L = report_head("Blind probes: images that are not brain MRI", ABOUT.format(n=len(rows), k=len(cats)), rows,
                    command, model, sha256, threads, seconds, notes)
    L.append(count_row(f"total without {GRID}", Counter(r["status"] for r in rows if r["category"] != GRID),
                        bold=True))
    rejected = [r for r in rows if r["status"] == "rejected"]
    refused = Counter(layer(r["reason"]) for r in rejected)
    refused_ng = Counter(layer(r["reason"]) for r in rejected if r["category"] != GRID)
    L += ["", "## Which layer refused", "", f"| layer | probes | without {GRID} |", "|---|---:|---:|",
          *[f"| {x} | {refused[x]} | {refused_ng[x]} |" for x in LAYERS], "",
          "## Probes not refused", ""]
    return "\n".join(L + unrefused_table(rows, described=True)) + "\n"


def score(folder: Path, model: str | None) -> tuple[list[dict], object]:
    """Every probe under `folder` but its manifest.csv through the prediction path (probe_sets.score), each row
    with the manifest's description."""
    return _score(folder, model, skip=("manifest.csv",), describe=read_manifest(folder))


def main(argv: list[str] | None = None) -> None:
    run(argv, "blind_probes.py", __doc__, tuple(GROUPS), DEFAULT_OUT, generate, score, report)


if __name__ == "__main__":
    main()
