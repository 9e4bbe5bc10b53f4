"""Probe images that are NOT brain MRI slices, for the refusal tests and benchmarks/refusal_rates.py.

Each probe is (name, bytes, file name) so it goes through the same reader as a real upload. All are made
here from numpy/PIL, or taken from files bundled in installed packages (matplotlib's sample data, pydicom's
test files); nothing is downloaded.
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _png(a: np.ndarray | Image.Image) -> bytes:
    im = a if isinstance(a, Image.Image) else Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _jpg(im: Image.Image, q: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def _blur(a: np.ndarray, r: float) -> np.ndarray:
    """Separable Gaussian blur (sigma r pixels, edges reflected), in plain numpy."""
    k = np.arange(-int(3 * r + 1), int(3 * r + 1) + 1, dtype=np.float32)
    k = np.exp(-k * k / (2 * r * r))
    k /= k.sum()
    p = len(k) // 2
    a = np.pad(np.asarray(a, np.float32), p, mode="reflect")
    a = sum(k[i] * a[i:i + a.shape[0] - 2 * p, :] for i in range(len(k)))
    a = sum(k[i] * a[:, i:i + a.shape[1] - 2 * p] for i in range(len(k)))
    return a.astype(np.float32)


def _grid(s: int):
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    return y / s, x / s


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def chest_ct(rng: np.random.Generator, s: int = 256) -> np.ndarray:
    """Axial chest CT in a soft-tissue/lung window: wide body ellipse, two dark lungs, heart, spine, table."""
    y, x = _grid(s)
    a = np.zeros((s, s), np.float32)
    body = ((x - 0.5) / 0.44) ** 2 + ((y - 0.52) / 0.30) ** 2 <= 1
    a[body] = 110
    for cx in (0.32, 0.68):
        lung = ((x - cx) / 0.14) ** 2 + ((y - 0.48) / 0.19) ** 2 <= 1
        a[lung] = 8
    a[((x - 0.52) / 0.10) ** 2 + ((y - 0.52) / 0.09) ** 2 <= 1] = 140  # heart
    a[((x - 0.5) / 0.045) ** 2 + ((y - 0.74) / 0.045) ** 2 <= 1] = 250  # vertebral body
    a[(np.abs(y - 0.93) < 0.01) & (np.abs(x - 0.5) < 0.47)] = 90  # table
    a += rng.normal(0, 6, a.shape) * body
    return _blur(a, 0.8)


def head_ct(rng: np.random.Generator, s: int = 256) -> np.ndarray:
    """Brain-window head CT: very bright thick skull, flat grey brain, dark background."""
    y, x = _grid(s)
    r = ((x - 0.5) / 0.36) ** 2 + ((y - 0.5) / 0.44) ** 2
    a = np.where(r <= 1, 255.0, 0.0)
    a[r <= 0.85] = 95 + 0 * r[r <= 0.85]
    return _blur(a + rng.normal(0, 3, a.shape) * (r <= 1), 0.7)


def ultrasound(rng: np.random.Generator, s: int = 256) -> np.ndarray:
    """B-mode sector scan: fan-shaped speckle (Rayleigh) that fades with depth, black outside the fan."""
    y, x = _grid(s)
    r = np.hypot(x - 0.5, y + 0.05)
    th = np.arctan2(x - 0.5, y + 0.05)
    fan = (np.abs(th) < 0.6) & (r > 0.15) & (r < 1.0)
    speckle = rng.rayleigh(1.0, (s, s)).astype(np.float32)
    a = 120 * speckle * np.exp(-1.2 * r) * fan
    a += 80 * (np.abs(r - 0.6) < 0.03) * fan  # a bright interface
    return a


def nuclear(rng: np.random.Generator, s: int = 128) -> np.ndarray:
    """Nuclear-medicine-like image: a few blurry hot blobs with Poisson noise."""
    y, x = _grid(s)
    a = np.zeros((s, s), np.float32)
    for _ in range(4):
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.05, 0.12)
        a += 200 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return rng.poisson(np.clip(a, 0, None) / 4).astype(np.float32) * 4


def spect_head(rng: np.random.Generator, s: int = 128) -> np.ndarray:
    """Brain-SPECT-like: one blurry, head-sized blob with counting noise."""
    y, x = _grid(s)
    a = 200 * np.exp(-(((x - 0.5) / 0.25) ** 2 + ((y - 0.5) / 0.3) ** 2) ** 2)
    return _blur(rng.poisson(a / 8).astype(np.float32) * 8, 3)


def document(s: int = 512) -> Image.Image:
    im = Image.new("L", (s, int(s * 1.3)), 245)
    d = ImageDraw.Draw(im)
    f = _font(16)
    for i in range(28):
        d.text((30, 20 + 22 * i), "Patient report: findings within normal limits. " * 2, fill=20, font=f)
    return im


def dark_document(s: int = 512) -> Image.Image:
    im = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(im)
    f = _font(18)
    for i in range(20):
        d.text((20, 15 + 24 * i), "SERIES 4  SLICE 12/40  TR 500 TE 15", fill=230, font=f)
    return im


def colour_scene(rng: np.random.Generator, s: int = 320) -> Image.Image:
    im = Image.new("RGB", (s, s), (120, 180, 235))  # sky
    d = ImageDraw.Draw(im)
    d.rectangle((0, int(s * 0.6), s, s), fill=(60, 150, 60))  # grass
    d.ellipse((int(s * 0.65), 20, int(s * 0.85), int(s * 0.2)), fill=(250, 220, 40))  # sun
    for _ in range(6):
        x0, y0 = rng.integers(0, s - 60, 2)
        d.rectangle((x0, y0, x0 + 50, y0 + 40), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def probes(seed: int = 0) -> list[tuple[str, bytes, str]]:
    """(name, bytes, file name) of every non-MRI probe."""
    rng = np.random.default_rng(seed)
    s = 256
    y, x = _grid(s)
    out: list[tuple[str, bytes, str]] = []

    def add(name: str, data: bytes, fn: str | None = None):
        out.append((name, data, fn or f"{name}.png"))

    add("black", _png(np.zeros((s, s))))
    add("white", _png(np.full((s, s), 255)))
    add("grey", _png(np.full((s, s), 128)))
    add("nearly_constant", _png(128 + (rng.random((s, s)) < 0.001)))
    add("gradient_h", _png(255 * x))
    add("gradient_v", _png(255 * y))
    add("gradient_radial", _png(255 * np.clip(1 - np.hypot(x - 0.5, y - 0.5) * 1.4, 0, 1)))
    add("uniform_noise", _png(rng.uniform(0, 255, (s, s))))
    add("gaussian_noise", _png(rng.normal(128, 40, (s, s))))
    add("salt_pepper", _png(255 * (rng.random((s, s)) < 0.1)))
    add("noise_disc", _png(rng.uniform(0, 255, (s, s)) * (np.hypot(x - 0.5, y - 0.5) < 0.4)))
    add("colour_noise", _png(Image.fromarray(rng.integers(0, 255, (s, s, 3)).astype(np.uint8))))
    add("checkerboard", _png(255 * ((np.floor(x * 8) + np.floor(y * 8)) % 2)))
    add("checkerboard_fine", _png(255 * ((np.floor(x * 32) + np.floor(y * 32)) % 2)))
    add("stripes", _png(127 + 127 * np.sin(2 * np.pi * 12 * x)))
    add("grid_lines", _png(255 * ((np.mod(x * 16, 1) < 0.1) | (np.mod(y * 16, 1) < 0.1))))
    add("texture", _png(_blur(rng.uniform(0, 255, (s, s)).astype(np.float32), 2) * 3 - 250))
    add("document", _png(document()))
    add("document_jpeg", _jpg(document().convert("RGB")), "document.jpg")
    add("dark_document", _png(dark_document()))
    add("colour_scene", _png(colour_scene(rng)))
    add("colour_scene_jpeg", _jpg(colour_scene(rng)), "scene.jpg")
    add("chest_ct", _png(chest_ct(rng)))
    add("head_ct", _png(head_ct(rng)))
    add("ultrasound", _png(ultrasound(rng)))
    add("nuclear_blobs", _png(nuclear(rng)))
    add("spect_head", _png(spect_head(rng)))
    add("square", _png(255 * ((np.abs(x - 0.5) < 0.3) & (np.abs(y - 0.5) < 0.3))))
    add("small_dot", _png(255 * (np.hypot(x - 0.5, y - 0.5) < 0.05)))
    add("two_discs", _png(200 * ((np.hypot(x - 0.28, y - 0.5) < 0.18) | (np.hypot(x - 0.72, y - 0.5) < 0.18))))
    add("ring", _png(230 * (np.abs(np.hypot(x - 0.5, y - 0.5) - 0.35) < 0.04)))
    # images bundled with installed packages
    try:
        import matplotlib

        sd = os.path.join(matplotlib.get_data_path(), "sample_data")
        with open(os.path.join(sd, "grace_hopper.jpg"), "rb") as f:
            gh = f.read()
        add("photo_grace_hopper", gh, "grace_hopper.jpg")
        add("photo_grace_hopper_gray", _png(Image.open(io.BytesIO(gh)).convert("L")))
        for fn in ("Minduka_Present_Blue_Pack.png", "logo2.png"):
            with open(os.path.join(sd, fn), "rb") as f:
                add(f"mpl_{fn.split('.')[0]}", f.read(), fn)
        with np.load(os.path.join(sd, "jacksboro_fault_dem.npz")) as z:
            dem = z["elevation"].astype(np.float32)
        add("terrain_dem", _png(255 * (dem - dem.min()) / (dem.max() - dem.min())))
    except (ImportError, OSError, KeyError):
        pass
    try:
        from pydicom.data import get_testdata_file

        for fn in ("CT_small.dcm", "examples_rgb_color.dcm", "examples_palette.dcm", "JPEG2000.dcm"):
            p = get_testdata_file(fn)
            if p:
                with open(p, "rb") as f:
                    add(f"pydicom_{fn[:-4]}", f.read(), fn)
    except ImportError:
        pass
    return out


def mri_like_bytes() -> list[tuple[str, bytes, str]]:
    """Real or realistic MRI slices bundled in packages, which must NOT be refused."""
    out = []
    try:
        import gzip

        import matplotlib

        sd = os.path.join(matplotlib.get_data_path(), "sample_data")
        with gzip.open(os.path.join(sd, "s1045.ima.gz")) as f:  # 256x256 16-bit axial brain MRI
            a = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(np.float32)
        out.append(("mpl_s1045_mri", _png(Image.fromarray((a / a.max() * 255).astype(np.uint8))), "s1045.png"))
    except (ImportError, OSError, ValueError):
        pass
    return out


def skimage_images() -> list[tuple[str, bytes, str]]:
    """(name, bytes, file name) of every image file bundled in scikit-image's `skimage/data` folder that Pillow
    reads, plus a grayscale copy of each colour one (a grayscale photograph is the harder case: the colour check
    cannot help). A second probe set of non-MRI pictures (photos, textures, text, microscopy, a retina, the
    Shepp-Logan phantom) that no refusal limit was set on; empty when scikit-image is not installed. Found
    without importing scikit-image (its data folder is plain files)."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    out: list[tuple[str, bytes, str]] = []
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        fn = os.path.basename(path)
        if not fn.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp")):
            continue
        with open(path, "rb") as f:
            data = f.read()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                gray = None if im.mode in ("L", "I", "I;16", "F", "1") else im.convert("L")
        except Exception:  # noqa: BLE001 - a file Pillow cannot read is an error record, not a probe
            continue
        stem = fn.rsplit(".", 1)[0]
        out.append((f"skimage_{stem}", data, fn))
        if gray is not None:
            out.append((f"skimage_{stem}_gray", _png(gray), f"{stem}_gray.png"))
    return out
