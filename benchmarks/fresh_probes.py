"""A fresh probe set of 326 images that are NOT 2-D brain MRI slices, generated deterministically, and how
tumorlens answers them: how many it refuses, by which layer, and what it says about the rest.

    python benchmarks/fresh_probes.py [--model CKPT] [--probes DIR] [--out FILE] [--threads N] [--only GROUPS]

The probes come from offline sources only: scikit-image's bundled data, scikit-learn's two sample photographs
(skipped, and said so, when scikit-learn is not installed), matplotlib's sample data (NOT its s1045.ima.gz,
which is a real brain MRI) and images synthesised here with numpy/scipy/PIL/matplotlib. Six categories:
grey and colour photographs (whole, cropped, turned, inverted, cut to a circle or an ellipse on black),
textures, medical-looking images of other body parts and modalities (X-ray, CT, ultrasound, mammogram,
histology, fundus, microscopy), documents (plots, text pages, tables, QR codes, icons, screenshots) and
brain-like decoys (cartoon brains, atlas-like blobs, grey ellipses, gradients, the Shepp-Logan phantom).
Every random choice comes from a generator seeded by a CRC32 of the probe's name, so a rerun writes the same
files (bit for bit for PNG/TIFF/BMP with the same Pillow and matplotlib; JPEG as the installed libjpeg encodes).

Every probe goes through `Predictor.predict_paths` (what `tumorlens predict` runs), refusal and abstention on;
the Markdown report (--out, default benchmarks/fresh_probes.md) counts the answers by category and by the
layer that refused, and lists every probe that was not refused. --probes DIR keeps the images there (it must
be empty or absent, outside the repository and ../shared); by default they go to a temporary folder that is
removed at the end. --only GROUPS (comma-separated: photo, texture, medical, document, decoy) makes a subset.

Research use only - not a medical device.
"""
from __future__ import annotations

import io
import os
import sys
import zlib
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "fresh_probes.md"
sys.path.insert(0, str(ROOT / "benchmarks"))
from probe_sets import LAYERS, layer, report_head, run, unrefused_table  # noqa: E402  (shared)
from probe_sets import score as _score  # noqa: E402
# where save() writes, and how many probes each category got; set by generate()
OUT = Path(".")
COUNT: dict[str, int] = {}


# ------------------------------------------------------------------------------------------ helpers
def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float64), 0, 255).round().astype(np.uint8)


def norm255(a: np.ndarray, lo_p: float = 0.5, hi_p: float = 99.5) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.percentile(a, [lo_p, hi_p])
    return np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1) * 255.0


def save(a, cat: str, name: str, fmt: str = "png", q: int = 90) -> None:
    """Write an array (H, W) or (H, W, 3) on 0..255 (or a PIL image) as OUT/cat/name.fmt."""
    im = a if isinstance(a, Image.Image) else Image.fromarray(u8(a))
    d = OUT / cat
    d.mkdir(parents=True, exist_ok=True)
    ext = {"png": "png", "jpg": "jpg", "tif": "tif", "bmp": "bmp"}[fmt]
    p = d / f"{name}.{ext}"
    if fmt == "jpg":
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        im.save(p, format="JPEG", quality=q)
    elif fmt == "tif":
        im.save(p, format="TIFF")
    elif fmt == "bmp":
        im.save(p, format="BMP")
    else:
        im.save(p, format="PNG")
    COUNT[cat] = COUNT.get(cat, 0) + 1


def gray_of(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    return a


def resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR),
                          dtype=np.float64)
    return np.stack([resize(a[..., c], h, w) for c in range(a.shape[2])], -1)


def fit_long(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = side / max(h, w)
    return resize(a, max(8, int(round(h * s))), max(8, int(round(w * s))))


def blur(a: np.ndarray, s: float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        return np.stack([ndi.gaussian_filter(a[..., c], s) for c in range(a.shape[2])], -1)
    return ndi.gaussian_filter(a, s)


def grid(h: int, w: int | None = None):
    w = w or h
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y / h, x / w


def ellipse_mask(h: int, w: int, cy=0.5, cx=0.5, ry=0.42, rx=0.36, angle=0.0, soft=0.0) -> np.ndarray:
    y, x = grid(h, w)
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = y - cy, x - cx
    u, v = c * dx + s * dy, -s * dx + c * dy
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    if soft <= 0:
        return (r <= 1).astype(np.float64)
    return np.clip((1 + soft - r) / soft, 0, 1)


def apply_mask(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    return a * (m[..., None] if a.ndim == 3 else m)


def font(size: int):
    import matplotlib
    p = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    return ImageFont.truetype(p, size)


def pink_noise(rng, h: int, w: int, beta: float = 1.0) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    spec = (rng.normal(size=(h, w // 2 + 1)) + 1j * rng.normal(size=(h, w // 2 + 1))) / f ** beta
    spec[0, 0] = 0
    return np.fft.irfft2(spec, s=(h, w))


def value_noise(rng, s: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    out = np.zeros((s, s))
    amp = 1.0
    for o in range(octaves):
        n = base * 2 ** o
        g = rng.random((n + 1, n + 1))
        out += amp * ndi.zoom(g, s / (n + 1), order=3)[:s, :s]
        amp *= 0.5
    return out


# ------------------------------------------------------------------------------------- photo sources
def photo_sources() -> tuple[dict[str, np.ndarray], list[str]]:
    """name -> RGB or gray uint8 array (only sources that load offline), and the names skipped because
    scikit-learn, which holds two of the photographs, is not installed."""
    import matplotlib
    import skimage.data as sd

    src: dict[str, np.ndarray] = {}
    for n in ("camera", "moon", "coins", "clock", "brick", "grass", "gravel", "cell", "microaneurysms"):
        src[n] = getattr(sd, n)()
    for n in ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
              "retina", "colorwheel"):
        src[n] = getattr(sd, n)()
    skipped: list[str] = []
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        skipped = ["china", "flower"]
    else:
        for n, a in zip(("china", "flower"), load_sample_images().images):
            src[n] = a
    p = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    src["grace_hopper"] = np.asarray(Image.open(p).convert("RGB"))
    faces = sd.lfw_subset()  # 200 faces of 25 x 25, float 0..1
    mosaic = np.vstack([np.hstack(list(faces[r * 4:(r + 1) * 4])) for r in range(4)])
    src["lfw_face0"] = u8(faces[0] * 255)
    src["lfw_face7"] = u8(faces[7] * 255)
    src["lfw_mosaic"] = u8(mosaic * 255)
    return src, skipped


def t_full(a, r):
    return a


def t_square(a, r):
    h, w = a.shape[:2]
    s = min(h, w)
    return a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def t_crop_resize(a, r):
    h, w = a.shape[:2]
    f = r.uniform(0.35, 0.7)
    ch, cw = max(16, int(h * f)), max(16, int(w * f))
    y0, x0 = r.integers(0, h - ch + 1), r.integers(0, w - cw + 1)
    c = a[y0:y0 + ch, x0:x0 + cw]
    side = int(r.choice([64, 128, 200, 256, 384, 512]))
    return resize(c, side, side)


def t_vignette(a, r):
    h, w = a.shape[:2]
    y, x = grid(h, w)
    d = np.sqrt(((y - 0.5) / 0.5) ** 2 + ((x - 0.5) / 0.5) ** 2)
    v = np.clip(1.25 - d, 0, 1) ** r.uniform(1.2, 2.5)
    return apply_mask(np.asarray(a, float), v)


def t_circle(a, r):
    a = t_square(a, r)
    h, w = a.shape[:2]
    return apply_mask(np.asarray(a, float), ellipse_mask(h, w, ry=0.45, rx=0.45))


def t_ellipse(a, r):
    h, w = a.shape[:2]
    # keyword arguments are evaluated left to right: the draws keep their order
    m = ellipse_mask(h, w, ry=r.uniform(0.38, 0.47),
                     rx=r.uniform(0.30, 0.42) * h / w if w > h else r.uniform(0.3, 0.42),
                     angle=r.uniform(-0.3, 0.3), soft=r.choice([0.0, 0.05]))
    return apply_mask(np.asarray(a, float), m)


def t_small_black(a, r):
    h, w = a.shape[:2]
    side = int(r.choice([256, 400, 512]))
    f = r.uniform(0.35, 0.55)
    s = f * side / max(h, w)
    b = resize(a, max(8, int(h * s)), max(8, int(w * s)))
    canvas = np.zeros((side, side) + a.shape[2:])
    y0 = (side - b.shape[0]) // 2 + int(r.integers(-20, 21))
    x0 = (side - b.shape[1]) // 2 + int(r.integers(-20, 21))
    canvas[y0:y0 + b.shape[0], x0:x0 + b.shape[1]] = b
    return canvas


def t_rotate(a, r):
    im = Image.fromarray(u8(a))
    return np.asarray(im.rotate(float(r.uniform(15, 75)), resample=Image.BILINEAR, expand=True), float)


def t_invert(a, r):
    return 255.0 - np.asarray(a, float)


def t_ellipse_vignette(a, r):
    return t_vignette(t_ellipse(t_square(a, r), r), r)


def t_circle_inverted(a, r):
    return t_circle(t_invert(a, r), r)


TRANSFORMS = [t_full, t_square, t_crop_resize, t_vignette, t_circle, t_ellipse, t_small_black, t_rotate,
              t_invert, t_ellipse_vignette, t_circle_inverted]


def make_photos(src: dict[str, np.ndarray]) -> None:
    for n, a in src.items():
        g = gray_of(a)
        if g.shape[0] < 64:
            g = resize(g, 256, 256)
        r = rng_for("gray:" + n)
        # each source: 4 transforms (always the ellipse and circle, the most head-like, plus two others)
        picks = [t_ellipse, t_circle] + list(r.choice([t for t in TRANSFORMS if t not in (t_ellipse, t_circle)],
                                                       size=2, replace=False))
        for t in picks:
            out = t(g, r)
            if max(out.shape[:2]) > 1024:
                out = fit_long(out, 1024)
            if max(out.shape[:2]) < 64:
                out = fit_long(out, 64)
            fmt = str(r.choice(["png", "png", "jpg"]))
            save(out, "photo_gray", f"{n}_{t.__name__[2:]}", fmt, q=int(r.integers(40, 95)))
    for n, a in src.items():
        if a.ndim != 3:
            continue
        a = a[..., :3].astype(float)
        r = rng_for("colour:" + n)
        picks = [t_ellipse] + list(r.choice([t_full, t_square, t_crop_resize, t_vignette, t_circle,
                                              t_small_black, t_rotate], size=2, replace=False))
        for t in picks:
            out = t(a, r)
            if max(out.shape[:2]) > 1024:
                out = fit_long(out, 1024)
            fmt = str(r.choice(["png", "jpg"]))
            save(out, "photo_colour", f"{n}_{t.__name__[2:]}", fmt, q=int(r.integers(40, 95)))
    # desaturated-ish colour photos (chroma mostly below the colour test): sepia/duotone
    for n in ("astronaut", "chelsea", "coffee", "grace_hopper"):
        g = gray_of(src[n])
        r = rng_for("sepia:" + n)
        tint = np.array([1.0, 0.93, 0.82]) if n != "coffee" else np.array([0.9, 0.95, 1.05])
        out = np.clip(g[..., None] * tint, 0, 255)
        out = t_ellipse(out, r)
        save(out, "photo_colour", f"{n}_tinted_ellipse", "jpg", q=85)


# ------------------------------------------------------------------------------------------ textures
def tex_pink(r, s):
    return norm255(pink_noise(r, s, s, beta=r.uniform(0.8, 1.6)))


def tex_perlin(r, s):
    return norm255(value_noise(r, s, octaves=int(r.integers(3, 7)), base=int(r.integers(2, 6))))


def tex_gabor(r, s):
    y, x = grid(s)
    out = np.zeros((s, s))
    for _ in range(int(r.integers(1, 4))):
        th = r.uniform(0, np.pi)
        k = r.uniform(8, 40)
        env = np.exp(-(((x - r.uniform(0.3, 0.7)) ** 2 + (y - r.uniform(0.3, 0.7)) ** 2)
                       / (2 * r.uniform(0.1, 0.4) ** 2)))
        out += env * np.sin(2 * np.pi * k * (np.cos(th) * x + np.sin(th) * y) + r.uniform(0, 6))
    return norm255(out)


def tex_stripes(r, s):
    y, x = grid(s)
    th = r.uniform(0, np.pi)
    k = r.uniform(6, 30)
    w = np.sin(2 * np.pi * k * (np.cos(th) * x + np.sin(th) * y) + 3 * np.sin(2 * np.pi * 2 * y))
    return norm255(w + 0.15 * r.normal(size=(s, s)))


def tex_voronoi(r, s):
    from scipy.spatial import cKDTree
    n = int(r.integers(20, 150))
    pts = r.random((n, 2)) * s
    y, x = np.mgrid[0:s, 0:s]
    d, i = cKDTree(pts).query(np.c_[y.ravel(), x.ravel()], k=2)
    vals = r.uniform(40, 230, n)
    img = vals[i[:, 0]].reshape(s, s)
    edge = (d[:, 1] - d[:, 0]).reshape(s, s) < 1.5
    img[edge] = 20
    return img


def tex_diamond(r, s):
    n = 1
    while 2 ** n + 1 < s:
        n += 1
    m = 2 ** n + 1
    a = np.zeros((m, m))
    a[0, 0], a[0, -1], a[-1, 0], a[-1, -1] = r.random(4)
    step, scale, rough = m - 1, 1.0, r.uniform(0.45, 0.7)
    while step > 1:
        h = step // 2
        for yy in range(h, m, step):
            for xx in range(h, m, step):
                a[yy, xx] = (a[yy - h, xx - h] + a[yy - h, xx + h] + a[yy + h, xx - h] + a[yy + h, xx + h]) / 4 \
                    + r.uniform(-scale, scale)
        for yy in range(0, m, h):
            for xx in range((yy + h) % step, m, step):
                vs = [a[yy + dy, xx + dx] for dy, dx in ((-h, 0), (h, 0), (0, -h), (0, h))
                      if 0 <= yy + dy < m and 0 <= xx + dx < m]
                a[yy, xx] = sum(vs) / len(vs) + r.uniform(-scale, scale)
        step, scale = h, scale * rough
    return norm255(a[:s, :s])


def tex_reaction(r, s):
    n = 128
    U, V = np.ones((n, n)), np.zeros((n, n))
    for _ in range(12):
        cy, cx = r.integers(10, n - 10, 2)
        U[cy - 4:cy + 4, cx - 4:cx + 4], V[cy - 4:cy + 4, cx - 4:cx + 4] = 0.5, 0.25
    V += 0.02 * r.random((n, n))
    F, k = [(0.037, 0.06), (0.03, 0.062), (0.055, 0.062), (0.025, 0.06)][int(r.integers(0, 4))]

    def lap(z):
        return np.roll(z, 1, 0) + np.roll(z, -1, 0) + np.roll(z, 1, 1) + np.roll(z, -1, 1) - 4 * z
    for _ in range(2500):
        uvv = U * V * V
        U += 0.16 * lap(U) - uvv + F * (1 - U)
        V += 0.08 * lap(V) + uvv - (F + k) * V
    return norm255(resize(V, s, s))


TEXTURES = [tex_pink, tex_perlin, tex_gabor, tex_stripes, tex_voronoi, tex_diamond, tex_reaction]


def make_textures() -> None:
    for t in TEXTURES:
        for seed in range(2):
            name = f"{t.__name__[4:]}{seed}"
            r = rng_for("tex:" + name)
            s = int(r.choice([128, 256, 384, 512, 768]))
            a = t(r, s)
            save(a, "texture", f"{name}_plain", str(r.choice(["png", "jpg"])), q=80)
            m = ellipse_mask(s, s, ry=r.uniform(0.38, 0.46), rx=r.uniform(0.30, 0.40), soft=0.04)
            save(a * m, "texture", f"{name}_ellipse", "png")
            b = blur(a, r.uniform(1.5, 4) * s / 256)
            save(b, "texture", f"{name}_blur", "png")
            save(blur(a * m, r.uniform(1.0, 3) * s / 256), "texture", f"{name}_ellipse_blur",
                 str(r.choice(["png", "jpg"])), q=75)
    # a few extra: textures dimmed at the rim (vignette) inside an ellipse, and a TIFF/BMP
    for i, t in enumerate((tex_pink, tex_perlin, tex_diamond)):
        r = rng_for(f"texrim:{i}")
        s = 320
        a = t(r, s)
        y, x = grid(s)
        rr = np.sqrt(((y - 0.5) / 0.44) ** 2 + ((x - 0.5) / 0.37) ** 2)
        rim = np.clip(1 - rr, 0, 1) ** 0.35 * (rr <= 1)
        save(0.3 * 255 * (rr <= 1) * (rr > 0.93) + a * rim * 0.8, "texture", f"{t.__name__[4:]}_rimmed",
             ["tif", "bmp", "png"][i])


# --------------------------------------------------------------------------------- medical-looking
def chest_xray(r, s=512):
    y, x = grid(s)
    a = np.zeros((s, s))
    body = (np.abs(x - 0.5) < 0.42 + 0.04 * y) & (y > 0.05)
    a[body] = 170
    for cx, sgn in ((0.32, -1), (0.68, 1)):
        lung = ((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.33) ** 2 <= 1
        a[lung & (y < 0.8)] = 55
    heart = ((x - 0.56) / 0.13) ** 2 + ((y - 0.62) / 0.13) ** 2 <= 1
    a[heart] = 150
    spine = np.abs(x - 0.5) < 0.035
    a[spine & body] = 215
    for k in range(9):  # ribs
        yy = 0.22 + 0.065 * k
        for side in (-1, 1):
            rib = np.abs(y - (yy + 0.25 * (x - 0.5) ** 2 * 4)) < 0.008
            a[rib & (np.abs(x - 0.5) > 0.05) & (np.abs(x - 0.5) < 0.42) & ((x - 0.5) * side > 0)] += 45
    clav = (np.abs(y - (0.17 + 0.15 * np.abs(x - 0.5))) < 0.012) & (np.abs(x - 0.5) < 0.3)
    a[clav] = 220
    a = blur(a, s / 200) + r.normal(0, 4, (s, s))
    return a


def knee_xray(r, s=384):
    y, x = grid(s)
    a = np.full((s, s), 8.0)
    soft = np.abs(x - 0.5) < 0.30 - 0.05 * np.cos(2 * np.pi * y)
    a[soft] = 90
    fem = (np.abs(x - 0.5) < 0.11 + 0.10 * np.clip((y - 0.25) / 0.2, 0, 1)) & (y < 0.47)
    tib = (np.abs(x - 0.5) < 0.19 - 0.09 * np.clip((y - 0.55) / 0.2, 0, 1)) & (y > 0.53)
    a[fem | tib] = 200
    a[(np.abs(x - 0.5) < 0.07) & ((y < 0.35) | (y > 0.7))] = 160  # medullary canal
    pat = ((x - 0.5) / 0.07) ** 2 + ((y - 0.42) / 0.05) ** 2 <= 1
    a[pat] = 215
    return blur(a, s / 180) + r.normal(0, 3, (s, s))


def spine_sag(r, s=512, mr=False):
    y, x = grid(s)
    a = np.full((s, s), 15.0 if not mr else 10.0)
    body = np.abs(x - 0.5) < 0.38
    a[body] = 80
    for k in range(7):
        yc = 0.08 + 0.135 * k
        vb = (np.abs(x - 0.45) < 0.09) & (np.abs(y - yc) < 0.05)
        a[vb] = 190 if not mr else 140
        disc = (np.abs(x - 0.45) < 0.085) & (np.abs(y - (yc + 0.0675)) < 0.015)
        a[disc] = 110 if not mr else 220
    canal = np.abs(x - 0.58) < 0.025
    a[canal & body] = 60 if not mr else 230
    a = blur(a, s / 250)
    a += r.normal(0, 6 if mr else 3, (s, s)) * (1 if not mr else 1)
    return a


def abdominal_ct(r, s=512, noise=6.0, window="soft"):
    y, x = grid(s)
    a = np.zeros((s, s))
    body = ((x - 0.5) / 0.45) ** 2 + ((y - 0.53) / 0.33) ** 2 <= 1
    inner = ((x - 0.5) / 0.41) ** 2 + ((y - 0.53) / 0.29) ** 2 <= 1
    a[body] = 70  # subcutaneous fat, darker than organs
    a[inner] = 125  # muscle/organs
    liver = ((x - 0.32) / 0.17) ** 2 + ((y - 0.45) / 0.15) ** 2 <= 1
    a[liver & inner] = 140
    spleen = ((x - 0.75) / 0.06) ** 2 + ((y - 0.52) / 0.09) ** 2 <= 1
    a[spleen] = 138
    for cx in (0.37, 0.63):
        kid = ((x - cx) / 0.05) ** 2 + ((y - 0.66) / 0.07) ** 2 <= 1
        a[kid] = 165
    vert = ((x - 0.5) / 0.06) ** 2 + ((y - 0.70) / 0.055) ** 2 <= 1
    a[vert] = 245
    proc = (np.abs(x - 0.5) < 0.012) & (y > 0.74) & (y < 0.82)
    a[proc] = 240
    aorta = ((x - 0.47) / 0.022) ** 2 + ((y - 0.60) / 0.022) ** 2 <= 1
    a[aorta] = 185
    for _ in range(int(r.integers(4, 9))):  # bowel gas
        cx, cy = r.uniform(0.42, 0.7), r.uniform(0.35, 0.55)
        g = ((x - cx) / r.uniform(0.015, 0.04)) ** 2 + ((y - cy) / r.uniform(0.015, 0.03)) ** 2 <= 1
        a[g & inner] = 5
    table = (np.abs(y - 0.91) < 0.008) & (np.abs(x - 0.5) < 0.47)
    a[table] = 110
    if window == "lung":
        a = np.where(a > 60, 235, a * 0.5)
    a = blur(a, s / 350) + r.normal(0, noise, (s, s))
    return a


def head_ct(r, s=512, window="brain"):
    y, x = grid(s)
    a = np.zeros((s, s))
    outer = ((x - 0.5) / 0.36) ** 2 + ((y - 0.5) / 0.43) ** 2 <= 1
    inner = ((x - 0.5) / 0.33) ** 2 + ((y - 0.5) / 0.40) ** 2 <= 1
    a[outer] = 250
    a[inner] = 105 if window == "brain" else 25
    if window == "brain":
        for cx in (0.46, 0.54):
            v = ((x - cx) / 0.03) ** 2 + ((y - 0.47) / 0.09) ** 2 <= 1
            a[v] = 60
    scalp = (((x - 0.5) / 0.38) ** 2 + ((y - 0.5) / 0.45) ** 2 <= 1) & ~outer
    a[scalp] = 95 if window == "brain" else 40
    a = blur(a, s / 400) + r.normal(0, 5 if window == "brain" else 2, (s, s))
    return a


def ultrasound(r, s=512):
    y, x = grid(s)
    a = np.zeros((s, s))
    ang = np.arctan2(x - 0.5, y + 0.05)
    rad = np.sqrt((x - 0.5) ** 2 + (y + 0.05) ** 2)
    fan = (np.abs(ang) < 0.6) & (rad > 0.15) & (rad < 0.95)
    sp = r.rayleigh(1.0, (s, s)) * blur(np.ones((s, s)) + 0.5 * value_noise(r, s, 3), 1)
    sp = blur(sp, 0.8)
    cyst = ((x - r.uniform(0.4, 0.6)) / 0.08) ** 2 + ((y - 0.55) / 0.06) ** 2 <= 1
    gain = np.clip(1.2 - rad, 0.2, 1)
    a[fan] = (sp * gain * 95)[fan]
    a[fan & cyst] *= 0.15
    im = Image.fromarray(u8(a))
    d = ImageDraw.Draw(im)
    d.text((10, 8), "GE  LOGIQ  C1-5  12cm", fill=220, font=font(max(9, s // 40)))
    d.text((s - s // 4, s - s // 16), "FR 24", fill=200, font=font(max(9, s // 40)))
    return np.asarray(im, float)


def mammogram(r, s=512):
    y, x = grid(int(s * 1.25), s)
    h = y.shape[0]
    a = np.zeros_like(y)
    breast = ((x - 0.0) / 0.72) ** 2 + ((y - 0.5) / 0.45) ** 2 <= 1
    tex = norm255(pink_noise(r, h, s, 1.3)) / 255
    fat = 0.45 + 0.4 * tex * np.clip(1 - x / 0.72, 0, 1)
    a[breast] = (fat * 200)[breast]
    for _ in range(3):
        cy, cx = r.uniform(0.3, 0.7), r.uniform(0.1, 0.5)
        a[((x - cx) ** 2 + (y - cy) ** 2) < 0.00005] = 250
    a[(x < 0.03) & (y < 0.9)] = 160  # pectoral strip
    return blur(a, 1.2) + r.normal(0, 2, a.shape)


def dental_pano(r, w=1024):
    h = w // 2
    y, x = grid(h, w)
    a = np.full((h, w), 60.0) + 30 * np.exp(-((y - 0.5) / 0.35) ** 2)
    for jaw, sgn in ((0.38, -1), (0.62, 1)):
        for k in range(16):
            cx = 0.17 + k * 0.044
            cy = jaw + sgn * 0.10 * ((cx - 0.5) / 0.33) ** 2 * -1
            tooth = ((x - cx) / 0.016) ** 2 + ((y - cy) / 0.09) ** 2 <= 1
            a[tooth] = 215
            crown = ((x - cx) / 0.019) ** 2 + ((y - (cy - sgn * 0.06)) / 0.04) ** 2 <= 1
            a[crown] = 240
    ram = (np.abs(x - 0.08) < 0.03) | (np.abs(x - 0.92) < 0.03)
    a[ram & (y > 0.2)] = 150
    return blur(a, 2) + r.normal(0, 5, (h, w))


def histology(r, s=512):
    y, x = grid(s)
    base = np.stack([235 - 30 * value_noise(r, s, 4), 180 - 50 * value_noise(r, s, 4),
                     210 - 30 * value_noise(r, s, 4)], -1)
    m = np.zeros((s, s))
    n = int(r.integers(120, 300))
    for _ in range(n):
        cy, cx, rr = r.random(), r.random(), r.uniform(0.006, 0.016)
        m = np.maximum(m, ((x - cx) ** 2 + (y - cy) ** 2 < rr * rr) * r.uniform(0.6, 1))
    m = blur(m, 1)
    nuc = np.array([90, 50, 140])
    return base * (1 - m[..., None]) + nuc * m[..., None]


def fundus(r, s=512, gray=False):
    y, x = grid(s)
    disc = ((x - 0.5) ** 2 + (y - 0.5) ** 2) <= 0.46 ** 2
    rad = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    shade = np.clip(1.05 - 1.2 * rad, 0.35, 1)
    rgb = np.stack([210 * shade, 95 * shade, 40 * shade], -1)
    od = ((x - 0.68) ** 2 + (y - 0.48) ** 2) <= 0.06 ** 2
    rgb[od] = [250, 220, 150]
    fov = ((x - 0.36) ** 2 + (y - 0.5) ** 2) <= 0.03 ** 2
    rgb[fov] *= 0.6
    ves = np.zeros((s, s))
    for k in range(10):  # vessels: random walks from the optic disc
        py, px = 0.48 * s, 0.68 * s
        th = r.uniform(0, 2 * np.pi)
        for _ in range(int(s * 0.7)):
            th += r.normal(0, 0.08)
            py += np.sin(th)
            px += np.cos(th)
            if not (0 <= py < s and 0 <= px < s):
                break
            ves[int(py), int(px)] = 1
    ves = blur(ndi.binary_dilation(ves > 0, iterations=max(1, s // 256)).astype(float), 1)
    rgb = rgb * (1 - 0.5 * ves[..., None])
    rgb[~disc] = 0
    rgb += r.normal(0, 3, rgb.shape)
    return gray_of(rgb) if gray else rgb


def cells_fluor(r, s=512):
    y, x = grid(s)
    a = np.zeros((s, s))
    for _ in range(int(r.integers(25, 80))):
        cy, cx, ry, rx = r.random(), r.random(), r.uniform(0.01, 0.04), r.uniform(0.01, 0.04)
        a += r.uniform(0.4, 1) * (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1)
    return norm255(blur(a, 2) + 0.03 * r.normal(size=(s, s)))


def cells_brightfield(r, s=512):
    y, x = grid(s)
    a = np.full((s, s), 190.0) + 10 * value_noise(r, s, 3)
    for _ in range(int(r.integers(20, 60))):
        cy, cx, rr = r.random(), r.random(), r.uniform(0.02, 0.05)
        d = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
        a -= 70 * (np.abs(d - rr) < 0.004) - 20 * (d < rr)
    return a + r.normal(0, 4, (s, s))


def hand_xray(r, s=512):
    y, x = grid(s)
    a = np.full((s, s), 10.0)
    palm = ((x - 0.5) / 0.22) ** 2 + ((y - 0.72) / 0.2) ** 2 <= 1
    a[palm] = 90
    for k, (cx, top) in enumerate(((0.3, 0.35), (0.4, 0.18), (0.5, 0.14), (0.6, 0.18), (0.7, 0.30))):
        finger = (np.abs(x - cx) < 0.035) & (y > top) & (y < 0.7)
        a[finger] = 90
        bone = (np.abs(x - cx) < 0.018) & (y > top + 0.02) & (y < 0.85)
        for j in range(4):
            gap = np.abs(y - (top + 0.12 + 0.15 * j)) < 0.006
            bone &= ~gap
        a[bone] = 210
    return blur(a, 1.5) + r.normal(0, 3, (s, s))


def pelvis_xray(r, s=512):
    y, x = grid(s)
    a = np.full((s, s), 100.0) + 20 * value_noise(r, s, 3)
    for sgn in (-1, 1):
        ilium = ((x - 0.5 - sgn * 0.22) / 0.16) ** 2 + ((y - 0.32) / 0.2) ** 2 <= 1
        a[ilium] = 185
        fh = ((x - 0.5 - sgn * 0.28) / 0.07) ** 2 + ((y - 0.62) / 0.07) ** 2 <= 1
        a[fh] = 205
        shaft = (np.abs(x - 0.5 - sgn * 0.33) < 0.05) & (y > 0.62)
        a[shaft] = 200
        obt = ((x - 0.5 - sgn * 0.13) / 0.06) ** 2 + ((y - 0.72) / 0.07) ** 2 <= 1
        a[obt] = 70
    sac = ((x - 0.5) / 0.09) ** 2 + ((y - 0.35) / 0.16) ** 2 <= 1
    a[sac] = 170
    return blur(a, 2) + r.normal(0, 3, (s, s))


def knee_mr_sag(r, s=384):
    # a knee MR-like sagittal slice: bright marrow (fat), dark cortex, grey cartilage, dark background
    y, x = grid(s)
    a = np.zeros((s, s))
    leg = np.abs(x - 0.5 + 0.05 * np.sin(3 * y)) < 0.33
    a[leg] = 80
    fem = ((x - 0.5) / 0.2) ** 2 + ((y - 0.3) / 0.25) ** 2 <= 1
    tib = (np.abs(x - 0.5) < 0.17) & (y > 0.58)
    a[fem | tib] = 200
    a[(fem | tib) & ~ndi.binary_erosion(fem | tib, iterations=4)] = 20
    pat = ((x - 0.78) / 0.05) ** 2 + ((y - 0.42) / 0.09) ** 2 <= 1
    a[pat] = 190
    return blur(a, 1.2) + r.normal(0, 6, (s, s)) * leg + np.abs(r.normal(0, 3, (s, s)))


def make_medical() -> None:
    C = "medical"
    specs = [
        ("chest_xray", chest_xray, [(512, "png"), (1024, "jpg"), (256, "png")]),
        ("knee_xray", knee_xray, [(384, "png"), (700, "jpg")]),
        ("spine_xray_sag", lambda r, s: spine_sag(r, s, mr=False), [(512, "png"), (300, "jpg")]),
        ("spine_mr_like_sag", lambda r, s: spine_sag(r, s, mr=True), [(512, "png"), (256, "png")]),
        ("abd_ct", abdominal_ct, [(512, "png"), (256, "png"), (768, "jpg")]),
        ("abd_ct_noisy", lambda r, s: abdominal_ct(r, s, noise=20), [(512, "png")]),
        ("abd_ct_lungwin", lambda r, s: abdominal_ct(r, s, window="lung"), [(512, "png")]),
        ("head_ct_brainwin", lambda r, s: head_ct(r, s, "brain"), [(512, "png"), (256, "jpg")]),
        ("head_ct_bonewin", lambda r, s: head_ct(r, s, "bone"), [(512, "png")]),
        ("ultrasound", ultrasound, [(512, "png"), (640, "jpg"), (256, "png")]),
        ("mammogram", mammogram, [(512, "png"), (800, "jpg")]),
        ("dental_pano", lambda r, s: dental_pano(r, s), [(1024, "png"), (600, "jpg")]),
        ("histology_colour", histology, [(512, "jpg"), (256, "png")]),
        ("histology_gray", lambda r, s: gray_of(histology(r, s)), [(512, "png")]),
        ("fundus_colour", fundus, [(512, "jpg"), (900, "png")]),
        ("fundus_gray", lambda r, s: fundus(r, s, gray=True), [(512, "png"), (256, "jpg")]),
        ("fundus_green", lambda r, s: fundus(r, s)[..., 1] * 2.2, [(512, "png")]),
        ("cells_fluor", cells_fluor, [(512, "png"), (1024, "jpg"), (128, "png")]),
        ("cells_brightfield", cells_brightfield, [(512, "png")]),
        ("hand_xray", hand_xray, [(512, "png"), (384, "jpg")]),
        ("pelvis_xray", pelvis_xray, [(512, "png")]),
        ("knee_mr_like_sag", knee_mr_sag, [(384, "png"), (256, "jpg")]),
    ]
    for name, f, variants in specs:
        for s, fmt in variants:
            r = rng_for(f"med:{name}:{s}")
            a = f(r, s)
            save(norm255(a, 0, 100) if a.ndim == 2 else a, C, f"{name}_{s}", fmt, q=85)
    # CT rendered and blurred / inverted; an X-ray with a burnt-in label; a real MR-free CT phantom
    r = rng_for("med:extra")
    ct = norm255(abdominal_ct(r, 512), 0, 100)
    save(blur(ct, 3), C, "abd_ct_blur", "png")
    save(255 - norm255(chest_xray(r, 512), 0, 100), C, "chest_xray_inverted", "png")
    save(norm255(head_ct(r, 400, "brain"), 0, 100), C, "head_ct_brainwin_400", "tif")
    save(norm255(abdominal_ct(r, 320), 0, 100), C, "abd_ct_320", "bmp")
    im = Image.fromarray(u8(norm255(chest_xray(r, 600), 0, 100)))
    ImageDraw.Draw(im).text((20, 20), "R  PA ERECT", fill=255, font=font(24))
    save(im, C, "chest_xray_labelled", "png")
    # skimage's real microscopy/medical-ish images (not MRI): cell, microaneurysms (retina), IHC (in photos too)
    import skimage.data as sd
    save(sd.microaneurysms(), C, "skimage_microaneurysms_raw", "png")
    save(sd.cell(), C, "skimage_cell_raw", "png")
    save(gray_of(sd.retina()), C, "skimage_retina_gray_full", "jpg", q=85)


# --------------------------------------------------------------------------------------- documents
def mpl_fig(draw, w=6.4, h=4.8, dpi=100, style=None) -> np.ndarray:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ctx = plt.style.context(style) if style else plt.style.context("default")
    with ctx:
        fig = plt.figure(figsize=(w, h), dpi=dpi)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), float)


def make_documents() -> None:
    C = "document"
    r = rng_for("doc")
    xs = np.linspace(0, 10, 200)

    def line(fig):
        ax = fig.add_subplot(111)
        for k in range(3):
            ax.plot(xs, np.sin(xs * (k + 1) / 2) + 0.1 * r.normal(size=xs.size), label=f"s{k}")
        ax.legend()
        ax.set_title("Signal")
        ax.grid(True)

    def bar(fig):
        ax = fig.add_subplot(111)
        ax.bar(list("ABCDEFG"), r.uniform(1, 10, 7), color="gray")
        ax.set_ylabel("count")

    def scatter(fig):
        ax = fig.add_subplot(111)
        ax.scatter(r.normal(size=300), r.normal(size=300), s=6, c="k")

    def hist(fig):
        ax = fig.add_subplot(111)
        ax.hist(r.normal(size=2000), bins=40, color="0.3")

    def heat(fig):
        ax = fig.add_subplot(111)
        im = ax.imshow(blur(r.normal(size=(40, 40)), 2), cmap="viridis")
        fig.colorbar(im)

    def heat_gray(fig):
        ax = fig.add_subplot(111)
        ax.imshow(blur(r.normal(size=(60, 60)), 3), cmap="gray")
        ax.axis("off")

    def contour(fig):
        ax = fig.add_subplot(111)
        Y, X = np.mgrid[-3:3:100j, -3:3:100j]
        ax.contour(X, Y, np.exp(-X ** 2 - Y ** 2) + 0.5 * np.exp(-(X - 1) ** 2 - (Y + 1) ** 2), 12, colors="k")

    def pie(fig):
        ax = fig.add_subplot(111)
        ax.pie(r.uniform(1, 5, 5), colors=[str(g) for g in (0.2, 0.4, 0.6, 0.8, 0.9)])

    def polar(fig):
        ax = fig.add_subplot(111, projection="polar")
        th = np.linspace(0, 2 * np.pi, 300)
        ax.plot(th, 1 + 0.3 * np.sin(5 * th), "k")

    def dem(fig):
        import matplotlib
        d = np.load(os.path.join(matplotlib.get_data_path(), "sample_data", "jacksboro_fault_dem.npz"))["elevation"]
        ax = fig.add_subplot(111)
        ax.imshow(d, cmap="gray")
        ax.axis("off")

    def eeg(fig):
        for k in range(8):
            ax = fig.add_subplot(8, 1, k + 1)
            ax.plot(np.cumsum(r.normal(size=500)), "k", lw=0.6)
            ax.axis("off")

    plots = [("line", line, None), ("bar", bar, None), ("scatter", scatter, None), ("hist", hist, None),
             ("heatmap_viridis", heat, None), ("heatmap_gray", heat_gray, None), ("contour", contour, None),
             ("pie_gray", pie, None), ("polar", polar, None), ("dem_gray", dem, None), ("eeg_traces", eeg, None),
             ("line_dark", line, "dark_background"), ("scatter_dark", scatter, "dark_background"),
             ("heatmap_gray_dark", heat_gray, "dark_background")]
    for i, (n, f, st) in enumerate(plots):
        a = mpl_fig(f, style=st, dpi=int([60, 80, 100, 150][i % 4]))
        save(a if i % 3 else gray_of(a), C, f"plot_{n}", ["png", "png", "jpg"][i % 3], q=80)

    # text pages and tables
    words = ("patient scan report brain tumor glioma meningioma pituitary normal slice axial contrast the of and "
             "in a with was is findings impression technique history").split()
    for k, (w, h, dark, fs) in enumerate([(612, 792, False, 14), (512, 512, True, 12), (1024, 768, False, 20),
                                          (300, 400, False, 9), (800, 600, True, 16)]):
        im = Image.new("L", (w, h), 0 if dark else 250)
        d = ImageDraw.Draw(im)
        yy = 20
        rr = rng_for(f"page{k}")
        while yy < h - 30:
            d.text((25, yy), " ".join(rr.choice(words, int(rr.integers(5, 12)))), fill=230 if dark else 20,
                   font=font(fs))
            yy += int(fs * 1.5)
        save(im, C, f"textpage{k}", ["png", "jpg", "png", "png", "jpg"][k], q=70)
    for k in range(3):
        rr = rng_for(f"table{k}")
        w, h = [(640, 480), (900, 500), (400, 400)][k]
        im = Image.new("L", (w, h), 255)
        d = ImageDraw.Draw(im)
        rows, cols = int(rr.integers(8, 16)), int(rr.integers(3, 6))
        for i in range(rows + 1):
            d.line([(10, 10 + i * (h - 20) // rows), (w - 10, 10 + i * (h - 20) // rows)], fill=0)
        for j in range(cols + 1):
            d.line([(10 + j * (w - 20) // cols, 10), (10 + j * (w - 20) // cols, h - 10)], fill=0)
        for i in range(rows):
            for j in range(cols):
                d.text((16 + j * (w - 20) // cols, 14 + i * (h - 20) // rows), f"{rr.uniform(0, 100):.2f}",
                       fill=0, font=font(max(10, (h - 20) // rows // 2)))
        save(im, C, f"table{k}", "png")
    # QR-like patterns
    for k, s in enumerate((25, 33, 41)):
        rr = rng_for(f"qr{k}")
        m = rr.random((s, s)) < 0.5
        for cy, cx in ((0, 0), (0, s - 7), (s - 7, 0)):
            m[cy:cy + 7, cx:cx + 7] = False
            m[cy:cy + 7, cx] = m[cy:cy + 7, cx + 6] = m[cy, cx:cx + 7] = m[cy + 6, cx:cx + 7] = True
            m[cy + 2:cy + 5, cx + 2:cx + 5] = True
        img = np.where(np.kron(m, np.ones((10, 10))), 0, 255)
        img = np.pad(img, 40, constant_values=255)
        save(img, C, f"qr{k}", ["png", "jpg", "bmp"][k], q=80)
    # handwriting-like strokes
    for k in range(3):
        rr = rng_for(f"hand{k}")
        w, h = 700, 500
        im = Image.new("L", (w, h), 245 if k != 2 else 10)
        d = ImageDraw.Draw(im)
        for line_ in range(6):
            x0, y0 = 30, 50 + line_ * 75
            pts = []
            t = 0.0
            while x0 < w - 40:
                t += 0.35
                x0 += rr.uniform(2, 7)
                pts.append((x0, y0 + 18 * np.sin(t * rr.uniform(1, 3)) + rr.normal(0, 2)))
                if rr.random() < 0.04:
                    d.line(pts, fill=20 if k != 2 else 235, width=3)
                    pts = []
                    x0 += 15
            if pts:
                d.line(pts, fill=20 if k != 2 else 235, width=3)
        save(im, C, f"handwriting{k}", "png")
    # icons and logos
    import skimage.data as sd
    import matplotlib
    save(sd.logo()[..., :3] * (sd.logo()[..., 3:] / 255.0), C, "skimage_logo", "png")
    save(gray_of(sd.logo()[..., :3]), C, "skimage_logo_gray", "png")
    for n in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
        im = Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", n)).convert("RGB")
        save(im, C, f"mpl_{n.split('.')[0]}", "png")
        save(im.convert("L"), C, f"mpl_{n.split('.')[0]}_gray", "png")
    for k in range(4):
        rr = rng_for(f"icon{k}")
        s = [64, 128, 256, 512][k]
        im = Image.new("L", (s, s), 0 if k % 2 else 255)
        d = ImageDraw.Draw(im)
        fg = 255 if k % 2 else 0
        d.ellipse([s * 0.1, s * 0.1, s * 0.9, s * 0.9], outline=fg, width=max(2, s // 20))
        d.polygon([(s * 0.3, s * 0.65), (s * 0.5, s * 0.25), (s * 0.7, s * 0.65)], fill=fg)
        d.text((s * 0.4, s * 0.7), "Aa", fill=fg, font=font(max(8, s // 8)))
        save(im, C, f"icon{k}_{s}", "png")
    # a filled grey disc icon with a soft shadow (an avatar placeholder)
    s = 256
    y, x = grid(s)
    av = 40 + 150 * (((x - 0.5) / 0.4) ** 2 + ((y - 0.5) / 0.4) ** 2 <= 1)
    av = av - 100 * ((((x - 0.5) / 0.12) ** 2 + ((y - 0.4) / 0.12) ** 2 <= 1))
    save(blur(av, 1), C, "avatar_placeholder", "png")
    # screenshot-like UI (dark theme window) and a terminal
    im = Image.new("RGB", (1024, 640), (30, 30, 34))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 1024, 32], fill=(50, 50, 56))
    d.rectangle([0, 32, 200, 640], fill=(40, 40, 44))
    for i in range(12):
        d.text((14, 48 + i * 26), f"item_{i:02d}.nii", fill=(200, 200, 200), font=font(14))
    d.rectangle([260, 80, 900, 560], outline=(120, 120, 120), width=2)
    d.ellipse([400, 150, 760, 500], fill=(110, 110, 110))
    save(im, C, "screenshot_ui_dark", "png")
    im = Image.new("L", (800, 500), 0)
    d = ImageDraw.Draw(im)
    rr = rng_for("term")
    for i in range(24):
        d.text((8, 6 + i * 20), "$ " + " ".join(rr.choice(words, 6)), fill=200, font=font(13))
    save(im, C, "terminal", "png")


# ---------------------------------------------------------------------------------- brain-like decoys
def gyri_field(r, s, scale=14.0):
    n = blur(r.normal(size=(s, s)), s / scale)
    n = (n - n.mean()) / (n.std() + 1e-9)
    return n


def make_decoys() -> None:
    C = "decoy"
    # 1. cartoon brain line art: outline + wavy gyri lines, on white and on black
    for k, (s, bg) in enumerate([(512, 255), (512, 0), (256, 255), (800, 0)]):
        r = rng_for(f"cartoon{k}")
        im = Image.new("L", (s, s), bg)
        d = ImageDraw.Draw(im)
        fg = 0 if bg else 255
        d.ellipse([s * 0.12, s * 0.18, s * 0.88, s * 0.78], outline=fg, width=max(2, s // 100))
        d.line([(s * 0.5, s * 0.2), (s * 0.5, s * 0.76)], fill=fg, width=max(2, s // 120))
        for _ in range(14):
            cx, cy = r.uniform(0.22, 0.78) * s, r.uniform(0.28, 0.7) * s
            pts = [(cx + s * 0.08 * np.cos(t) * (1 + 0.3 * np.sin(4 * t)), cy + s * 0.04 * np.sin(t) * 2)
                   for t in np.linspace(0, np.pi * r.uniform(0.8, 1.6), 20)]
            d.line(pts, fill=fg, width=max(2, s // 150))
        d.line([(s * 0.55, s * 0.76), (s * 0.58, s * 0.92)], fill=fg, width=max(3, s // 60))  # brain stem
        save(im, C, f"cartoon_brain{k}", ["png", "png", "jpg", "png"][k], q=80)
    # cartoon brain coloured pink, filled
    im = Image.new("RGB", (512, 512), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.ellipse([60, 100, 452, 400], fill=(240, 170, 180), outline=(150, 60, 80), width=6)
    save(im, C, "cartoon_brain_pink", "png")
    # 2. atlas-like grey blob with gyri lines (dark background), several renderings
    for k in range(8):
        r = rng_for(f"atlas{k}")
        s = int([256, 384, 512, 512, 640, 320, 512, 768][k])
        y, x = grid(s)
        ry, rx = r.uniform(0.38, 0.45), r.uniform(0.30, 0.38)
        rr = np.sqrt(((y - 0.5) / ry) ** 2 + ((x - 0.5) / rx) ** 2)
        brain = rr <= 1
        g = gyri_field(r, s, scale=r.uniform(10, 25))
        sulci = np.abs(g) < r.uniform(0.12, 0.3)  # thin dark lines where the field crosses zero
        a = np.zeros((s, s))
        grey = 150 + 30 * gyri_field(r, s, 3)
        a[brain] = grey[brain]
        a[brain & sulci] = 60
        if k % 2:  # a white-matter core
            core = rr <= 0.65
            a[core & ~sulci] = 200
        if k >= 4:  # midline fissure + ventricles as dark shapes
            a[brain & (np.abs(x - 0.5) < 0.006)] = 20
            for cx in (0.46, 0.54):
                a[((x - cx) / 0.025) ** 2 + ((y - 0.48) / 0.1) ** 2 <= 1] = 30
        a = blur(a, r.uniform(0.6, 1.5))
        if k >= 6:
            a += r.normal(0, 6, (s, s))
        save(a, C, f"atlas_blob{k}", ["png", "jpg"][k % 2], q=85)
    # atlas-like brain 'photo' in colour (pinkish grey)
    r = rng_for("atlas_colour")
    s = 512
    y, x = grid(s)
    brain = ((y - 0.5) / 0.42) ** 2 + ((x - 0.5) / 0.34) ** 2 <= 1
    g = gyri_field(r, s, 16)
    sh = np.where(np.abs(g) < 0.2, 0.6, 1.0) * brain
    rgb = np.stack([210 * sh, 175 * sh, 170 * sh], -1)
    save(blur(rgb, 1), C, "atlas_photo_colour", "jpg", q=85)
    save(gray_of(blur(rgb, 1)), C, "atlas_photo_gray", "png")
    # 3. uniform grey ellipses with mild noise (several noise levels, sizes, with/without smoothing)
    for k, (s, lvl, nz, sm) in enumerate([(256, 140, 3, 0), (512, 140, 8, 0), (512, 100, 15, 0), (384, 180, 5, 1),
                                          (200, 120, 10, 1.5), (1024, 150, 6, 0), (512, 150, 25, 2)]):
        r = rng_for(f"uniform{k}")
        m = ellipse_mask(s, s, ry=r.uniform(0.38, 0.46), rx=r.uniform(0.30, 0.40), angle=r.uniform(-0.2, 0.2))
        a = m * lvl + r.normal(0, nz, (s, s)) * (m if k % 2 else 1)
        if sm:
            a = blur(a, sm)
        save(np.clip(a, 0, 255), C, f"uniform_ellipse{k}", ["png", "jpg"][k % 2], q=90)
    # 4. ellipses filled with gradients (linear, radial, bright rim)
    for k, kind in enumerate(["linear_v", "linear_h", "radial_in", "radial_out", "diag", "rim", "linear_v_noisy",
                              "radial_in_noisy"]):
        r = rng_for(f"grad{k}")
        s = int(r.choice([256, 384, 512]))
        y, x = grid(s)
        rr = np.sqrt(((y - 0.5) / 0.44) ** 2 + ((x - 0.5) / 0.36) ** 2)
        m = rr <= 1
        g = {"linear_v": y, "linear_h": x, "radial_in": 1 - rr, "radial_out": rr, "diag": (x + y) / 2,
             "rim": np.clip(rr, 0, 1) ** 6, "linear_v_noisy": y, "radial_in_noisy": 1 - rr}[kind]
        a = (40 + 180 * g) * m
        if "noisy" in kind:
            a += r.normal(0, 8, (s, s)) * m + np.abs(r.normal(0, 3, (s, s)))
        save(a, C, f"gradient_ellipse_{kind}", "png")
    # 5. Shepp-Logan phantom (a CT head phantom), sizes and noise
    import skimage.data as sd
    p = sd.shepp_logan_phantom()
    r = rng_for("shepp")
    save(norm255(p, 0, 100), C, "shepp_logan_400", "png")
    save(norm255(resize(p, 256, 256), 0, 100), C, "shepp_logan_256", "png")
    save(norm255(resize(p, 512, 512) + r.normal(0, 0.03, (512, 512)), 0, 100), C, "shepp_logan_512_noisy", "png")
    save(norm255(blur(resize(p, 512, 512), 2), 0, 100), C, "shepp_logan_512_blur", "jpg", q=80)
    # 6. ellipse with a skull-like bright ring and 1/f inside (an 'MRI-ish' texture that is not anatomy)
    for k in range(4):
        r = rng_for(f"ringtex{k}")
        s = int([256, 512, 384, 512][k])
        y, x = grid(s)
        rr = np.sqrt(((y - 0.5) / 0.43) ** 2 + ((x - 0.5) / 0.35) ** 2)
        tex = norm255(pink_noise(r, s, s, r.uniform(1.2, 2.0)))
        a = np.where(rr <= 0.92, 0.4 * tex + 60, 0) + np.where((rr > 0.94) & (rr <= 1), 200, 0)
        a = blur(a, 1) + np.abs(r.normal(0, 2, (s, s)))
        save(a, C, f"ring_pinknoise{k}", "png")
    # 7. a bright disc with a face-like mark, a fried egg, a coin on black: round bright objects on black
    r = rng_for("round_objects")
    s = 512
    y, x = grid(s)
    egg = 230 * (((x - 0.5) / 0.38) ** 2 + ((y - 0.5) / 0.33) ** 2 <= 1) + r.normal(0, 4, (s, s))
    egg = np.where(((x - 0.52) / 0.12) ** 2 + ((y - 0.48) / 0.11) ** 2 <= 1, 170, egg)
    save(blur(egg, 1.5), C, "fried_egg_gray", "png")
    pl = norm255(value_noise(r, s, 5), 0, 100) * 0.4 + 120
    planet = pl * (((x - 0.5) / 0.4) ** 2 + ((y - 0.5) / 0.4) ** 2 <= 1) * np.clip(1.3 - 1.2 * x, 0.1, 1)
    save(planet, C, "planet_shaded", "png")
    walnut = 160 + 50 * np.tanh(3 * gyri_field(r, s, 30))
    walnut *= ((x - 0.5) / 0.33) ** 2 + ((y - 0.5) / 0.42) ** 2 <= 1
    walnut[np.abs(x - 0.5) < 0.008] = 10
    save(blur(walnut, 1), C, "walnut_like", "jpg", q=85)



# ------------------------------------------------------------------------------------------ generating
GROUPS = ("photo", "texture", "medical", "document", "decoy")


def generate(out: str | os.PathLike, groups: tuple[str, ...] = GROUPS) -> tuple[dict[str, int], list[str]]:
    """Write the probes of `groups` into out/<category>/ (out must be empty or absent); return the number of
    probes per category and notes on skipped sources. Each group seeds its own generators, so a subset
    writes the same files as the whole set."""
    global OUT
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown probe groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    OUT = Path(out)
    OUT.mkdir(parents=True, exist_ok=True)
    COUNT.clear()
    notes: list[str] = []
    if "photo" in groups:
        src, skipped = photo_sources()
        if skipped:
            notes.append(f"scikit-learn is not installed: its sample photographs ({', '.join(skipped)}) were "
                         "skipped.")
        make_photos(src)
    makers = {"texture": make_textures, "medical": make_medical, "document": make_documents, "decoy": make_decoys}
    for g in GROUPS:
        if g in groups and g in makers:
            makers[g]()
    return dict(COUNT), notes


# ------------------------------------------------------------------------------------------- scoring
# -------------------------------------------------------------------------------------------- report
ABOUT = ("The set: {n} images that are not 2-D brain MRI slices, in six categories - grey photographs, colour "
         "photographs (whole, cropped, turned, inverted, cut to a circle or an ellipse on black), textures, "
         "medical-looking images of other body parts and modalities (X-ray, CT, ultrasound, mammogram, "
         "histology, fundus, microscopy), documents (plots, text pages, tables, QR codes, icons, screenshots) "
         "and brain-like decoys (cartoon brains, atlas-like blobs, grey ellipses, gradients, the Shepp-Logan "
         "phantom). Sources: scikit-image's bundled data, scikit-learn's sample images, matplotlib's sample data "
         "(except its brain MRI, s1045.ima.gz) and images generated by the script, each seeded by its name. "
         "It was built on 2026-11-28 by a helper as a fresh probe set, after the refusal's limits were set and "
         "before the look-alike detector was fitted; the detector's regularisation strength was then chosen "
         "with this set's results in view, so it is not a blind test.")


def report(rows: list[dict], command: str, model: str, sha256: str, threads: int, seconds: float,
           notes: list[str] = ()) -> str:
    """The Markdown report of scored probes (dicts as `score` returns them)."""
    L = report_head("Fresh probes: images that are not brain MRI", ABOUT.format(n=len(rows)), rows, command, model,
                    sha256, threads, seconds, notes)
    refused = Counter(layer(r["reason"]) for r in rows if r["status"] == "rejected")
    L += ["", "## Which layer refused", "", "| layer | probes |", "|---|---:|",
          *[f"| {x} | {refused[x]} |" for x in LAYERS], "",
          "## Probes not refused", ""]
    return "\n".join(L + unrefused_table(rows)) + "\n"


def score(folder: Path, model: str | None) -> tuple[list[dict], object]:
    """Every probe under `folder` through the prediction path (probe_sets.score)."""
    return _score(folder, model)


def main(argv: list[str] | None = None) -> None:
    run(argv, "fresh_probes.py", __doc__, tuple(GROUPS), DEFAULT_OUT, generate, score, report)


if __name__ == "__main__":
    main()
