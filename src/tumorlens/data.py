"""Reading class-folder datasets: decoding, preprocessing, fingerprints and an on-disk cache.

A dataset is a folder with one subfolder per class, optionally under `Training/` and `Testing/`.
Each image is decoded once; its preprocessed array and perceptual fingerprints are cached under
`$TUMORLENS_CACHE_DIR` (default `~/.cache/tumorlens`), keyed by the file's sha256 and the preprocessing
settings, so a second pass over a dataset reads small arrays instead of decoding JPEGs.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .config import CLASSES, Preprocess, TumorlensError
from .fileio import atomic_write_bytes
from .numeric import finite, percentile

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
# refuse before decoding: a header claiming 100k x 100k is a decompression bomb. Brain MRI slices are at most a
# few thousand pixels a side; 60 M pixels let a 474 KB 7700x7700 16-bit RGBA PNG take 6 s and 2 GB of memory
MAX_PIXELS = 4096 * 4096
# and at most this many a side: preprocessing pads the head's box to a square, so a legal 60000 x 100 PNG (6 KB,
# 6 M pixels) asked for a 60000 x 60000 array (15.5 GiB) in audit, split and train
MAX_SIDE = 4096
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey image

_ALIASES = {
    "glioma": "glioma", "gliomatumor": "glioma", "gliomas": "glioma",
    "meningioma": "meningioma", "meningiomatumor": "meningioma", "meningiomas": "meningioma",
    "notumor": "notumor", "notumour": "notumor", "nontumor": "notumor", "normal": "notumor",
    "healthy": "notumor",
    "pituitary": "pituitary", "pituitarytumor": "pituitary", "pituitarytumour": "pituitary",
}
_SPLIT_DIRS = {"training": "train", "train": "train", "testing": "test", "test": "test"}


def canonical_class(name: str) -> str | None:
    """Map a folder name such as `no_tumor`, `No Tumor` or `pituitary_tumor` to a canonical class."""
    return _ALIASES.get(re.sub(r"[\s_\-]+", "", name.lower()))


# ----------------------------------------------------------------------------------------- decoding
def _to_gray_array(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> float32 2-D array of raw intensities (8-bit stays 0..255, 16-bit 0..65535)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im.convert("I") if im.mode.startswith("I;16") else im, dtype=np.float32)
        return a
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        # transparent pixels become black background, not the colour hidden under alpha = 0
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return gray * (rgba[..., 3] / 255.0)
    if im.mode != "L":
        im = im.convert("L")  # RGB, CMYK, YCbCr, 1: ITU-R 601-2 luma
    return np.asarray(im, dtype=np.float32)


def read_gray(path: str | os.PathLike, draft: int | None = None) -> np.ndarray:
    """Decode an image file to a float32 grayscale array; raise TumorlensError naming file and problem.

    draft: for JPEGs, let the decoder downscale by a power of two while keeping both sides >= draft
    pixels (much faster; used for training-size inputs, never for display).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise TumorlensError(f"{path}: cannot read ({e.strerror or e})") from None
    if size == 0:
        raise TumorlensError(f"{path}: empty file (0 bytes)")
    return decode_image(path, str(path), draft)


def decode_image(src, name: str, draft: int | None = None, inspect=None, page: int | None = None) -> np.ndarray:
    """Pillow decode of a path or file object with the size checks, draft mode and gray conversion that
    every image input shares (training, the CLI, the web app). `inspect(im, mode, size)`, if given, sees
    the loaded image with its mode and size as stored (before draft) while it is still open. `page`: the page
    of a multi-page file to read (prediction reads each, `readers`); None reads the first and says so."""
    try:
        with Image.open(src) as im:
            pages = getattr(im, "n_frames", 1)
            if page is not None:
                if not 0 <= page < pages:
                    raise TumorlensError(f"{name}: has {pages} page(s), no page {page}")
                if page:
                    im.seek(page)  # before the size checks: a later page may be larger than the first
            elif pages > 1:
                # a multi-page TIFF or an animated GIF in a training set: the first page is read; said once per
                # file, so a stack of slices is not mistaken for one
                log.warning("%s: %s file with %d pages; only the first is read", name, im.format, pages)
                im.seek(0)
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise TumorlensError(f"{name}: image claims {w}x{h} pixels, over the {MAX_PIXELS:,} limit "
                                     f"({MAX_SIDE} x {MAX_SIDE})")
            if max(w, h) > MAX_SIDE:
                raise TumorlensError(f"{name}: image is {w}x{h} pixels, a side over the {MAX_SIDE} limit")
            if w < 8 or h < 8:
                raise TumorlensError(f"{name}: image is only {w}x{h} pixels")
            mode = im.mode
            if draft and im.format == "JPEG":
                im.draft("L" if mode in ("L", "RGB") else mode, (draft, draft))
            im.load()
            # a camera or phone JPEG may store its pixels sideways with an EXIF Orientation tag that viewers
            # apply: the slice is read as the user sees it. No image of the Kaggle set carries one (checked on
            # all 7,023), so training inputs and caches are unchanged
            orientation = im.getexif().get(0x0112, 1)
            shown = ImageOps.exif_transpose(im) if orientation in range(2, 9) else im
            gray = _to_gray_array(shown)
            if inspect is not None:
                inspect(im, mode, (w, h))
            return gray
    except Exception as e:  # noqa: BLE001 - mapped to one-line errors below, the rest re-raised
        raise image_error(name, e, _magic(src)) from None


# leading bytes of the formats Pillow reads, to tell "not an image" from "an image of a kind Pillow cannot
# decode" (e.g. scikit-image's multipage_rgb.tif: planar 64-bit float RGB)
MAGIC = {b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"BM": "BMP", b"GIF8": "GIF"}


def _magic(src) -> bytes:
    """The first 132 bytes of a path or a seekable file object (its position restored), or b"" if unreadable:
    enough for the image formats' leading bytes and DICOM's "DICM" at byte 128."""
    try:
        if isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as f:
                return f.read(132)
        pos = src.tell()
        src.seek(0)
        head = src.read(132)
        src.seek(pos)
        return head
    except (OSError, AttributeError, ValueError):
        return b""


def image_error(name: str, e: Exception, head: bytes = b"") -> Exception:
    """The one-line TumorlensError for a Pillow failure (other exceptions are returned unchanged); `head`,
    the file's first bytes, names the format of a file Pillow could not identify."""
    if isinstance(e, TumorlensError):
        return e
    if isinstance(e, UnidentifiedImageError):
        if head[128:132] == b"DICM" or str(name).lower().endswith((".dcm", ".dicom")):
            # audit, split and train read the dataset's images with Pillow only ("not an image" misled a lab
            # whose training set held DICOM exports)
            return TumorlensError(f"{name}: a DICOM file; datasets for audit, split and training are read as "
                                  f"PNG/JPEG/BMP/TIFF images only - export the slices as images (tumorlens predict "
                                  f"reads DICOM)")
        fmt = next((f for m, f in MAGIC.items() if head.startswith(m)), None)
        if fmt:
            return TumorlensError(f"{name}: a {fmt} file that Pillow cannot decode (corrupt, or floating-point or "
                                  f"planar samples); save the slice as an 8- or 16-bit grayscale PNG")
        return TumorlensError(f"{name}: not an image file (format not recognised)")
    if isinstance(e, Image.DecompressionBombError):
        return TumorlensError(f"{name}: image too large ({e})")
    if isinstance(e, (OSError, ValueError, SyntaxError, EOFError)):
        return TumorlensError(f"{name}: corrupt or truncated image ({str(e) or type(e).__name__})")
    if isinstance(e, (TypeError, KeyError, IndexError, AttributeError, ZeroDivisionError, struct.error)):
        # Pillow's plugins raise these on damaged headers too: a TIFF whose second page lacks its size gave
        # "TypeError: Missing dimensions" from n_frames, and killed audit, split and train (55 of 8,000 fuzzed
        # files, in a helper's audit)
        return TumorlensError(f"{name}: corrupt image ({type(e).__name__}: {str(e) or 'no detail'})")
    return e


# ------------------------------------------------------------------------------------ preprocessing
def _count_dtype(n: int) -> type:
    """The smallest integer type that counts to `n` without overflow."""
    return np.int16 if n < 2 ** 15 else np.int64


def head_box(gray: np.ndarray, pre: Preprocess) -> tuple[int, int, int]:
    """Square box (top, left, side) around the head, in the array's pixel coordinates.

    The box may reach outside the array (padding with zeros); a blank image gives the whole frame.
    """
    h, w = gray.shape
    if not pre.crop:
        side = max(h, w)
        return (h - side) // 2, (w - side) // 2, side
    # = float(np.percentile(gray, 99.0)) and (gray, 1.0), bit for bit, in one faster pass (numeric.py)
    hi, lo = percentile(gray, 99.0, 1.0)
    fg = gray > lo + pre.fg_threshold * (hi - lo) if hi > lo else np.zeros_like(gray, dtype=bool)
    # rows/columns need a few foreground pixels, so scanner text and specks do not stretch the box
    # counted as small integers straight from the mask's bytes: the same counts as fg.sum(), 3x faster (8
    # against 25 us per axis on 256 x 256: bool sums convert to int64 first; throwaway timing 2026-11-28)
    u = fg.view(np.uint8)
    rows = np.flatnonzero(np.add.reduce(u, 1, dtype=_count_dtype(w)) >= max(2, 0.02 * w))
    cols = np.flatnonzero(np.add.reduce(u, 0, dtype=_count_dtype(h)) >= max(2, 0.02 * h))
    if rows.size == 0 or cols.size == 0:
        side = max(h, w)
        return (h - side) // 2, (w - side) // 2, side
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(round(max(r1 - r0, c1 - c0) * (1 + 2 * pre.margin)))
    side = max(side, 8)
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    return int(round(cy - side / 2)), int(round(cx - side / 2)), side


def crop_square(gray: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """Cut `box` out of `gray`, zero-padding where the box leaves the array."""
    top, left, side = box
    out = np.zeros((side, side), dtype=np.float32)
    h, w = gray.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, h), min(left + side, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = gray[r0:r1, c0:c1]
    return out


def resize(a: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float32 array with antialiasing when shrinking (PIL 'F' mode)."""
    wh = (size, size) if isinstance(size, int) else (size[1], size[0])
    return np.asarray(Image.fromarray(a.astype(np.float32, copy=False), mode="F").resize(wh, Image.BILINEAR))


def preprocess_array(gray: np.ndarray, pre: Preprocess) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Raw grayscale array -> (size x size float32 in [0, 1], crop box in the array's coordinates)."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2:
        raise TumorlensError(f"expected a 2-D grayscale array, got shape {gray.shape}")
    gray = finite(gray, nan=0.0, posinf=0.0, neginf=0.0)
    gray = gray - float(gray.min())
    box = head_box(gray, pre)
    x = resize(crop_square(gray, box), pre.size)
    if pre.normalize:
        inside = x[x > pre.fg_threshold * float(x.max())] if x.max() > 0 else x
        scale = percentile(inside, pre.norm_percentile) if inside.size else 0.0
    else:
        scale = float(gray.max())
    x = np.clip(x / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(x)
    if pre.equalize:
        x = equalize_head(x.astype(np.float32))
    return x.astype(np.float32), box


EQ_FG = 0.08  # background: at or below 8% of the normalised range (augment.py uses the same for the head)


def equalize_head(x: np.ndarray, fg: float = EQ_FG) -> np.ndarray:
    """Histogram equalisation of the head: every pixel above `fg` becomes fg + (1 - fg) * (r + 0.5) / n, r its
    mean rank (0-based; tied pixels share the mean of their ranks) among the n pixels above fg; the background
    is left as it is. An increasing grey-level curve that keeps the background below `fg` leaves the result
    unchanged. `augment.equalize_batch` computes the same on a batch of tensors."""
    flat = np.asarray(x, dtype=np.float32).ravel()
    # one stable argsort, then runs of equal values: 4x faster than two searchsorted passes (0.15 against 0.6 ms
    # on 64 x 64, throwaway timing), the same values
    order = np.argsort(flat, kind="stable")
    srt = flat[order]
    n_bg = int(np.searchsorted(srt, np.float32(fg), side="right"))
    n = flat.size - n_bg
    if n == 0:
        return flat.reshape(np.shape(x)).copy()
    new = np.empty(srt.size, dtype=bool)  # where a run of equal values starts
    new[0] = True
    np.not_equal(srt[1:], srt[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], srt.size)
    r = (starts + ends - 1).astype(np.float32)[np.cumsum(new) - 1] * np.float32(0.5) - np.float32(n_bg)  # mean rank
    v = np.float32(fg) + np.float32(1 - fg) * ((r + np.float32(0.5)) / np.float32(n))
    out = np.empty_like(flat)
    out[order] = np.where(srt > np.float32(fg), v, srt)
    return out.reshape(np.shape(x))


def map_box(box: tuple[int, int, int], scale: float) -> tuple[int, int, int]:
    """A crop box found on a draft-decoded image, expressed in full-resolution coordinates."""
    return tuple(int(round(v * scale)) for v in box)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------- fingerprints
def dhash256(gray: np.ndarray) -> np.ndarray:
    """256-bit difference hash: sign of the horizontal gradient on a 17x16 bilinear thumbnail.

    Robust to re-encoding, resizing and monotone re-windowing. Returned as 32 packed bytes.
    """
    g = gray
    if g.min() < 0 or g.max() > 255:  # 16-bit or float data: bring to an 8-bit range first
        g = g - g.min()
        g = g / g.max() * 255.0 if g.max() > 0 else g
    # rounding to 8 bits as an 8-bit thumbnail would: in float, the flat black background keeps tiny
    # differences whose signs are noise, which alone moved copies 7-19 bits apart (measured on Kaggle)
    t = np.round(resize(g, (16, 17)))
    return np.packbits((t[:, 1:] > t[:, :-1]).ravel())


# ------------------------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """Where decoded arrays are cached; `TUMORLENS_CACHE_DIR` overrides `~/.cache/tumorlens`."""
    env = os.environ.get("TUMORLENS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tumorlens"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Decoded:
    """One decoded image: network input plus what the audit needs, all from a single decode."""

    image: np.ndarray  # (size, size) float32 in [0, 1]
    dhash: np.ndarray  # (32,) uint8, 256-bit dHash of the raw frame
    dhash_mirror: np.ndarray  # the same of the left-right mirrored frame
    orig_shape: tuple[int, int]


def _cache_path(sha: str, pre: Preprocess) -> Path:
    return cache_dir() / f"v3-{pre.key()}" / sha[:2] / f"{sha}.npz"


def decode_file(path: str | os.PathLike, pre: Preprocess) -> Decoded:
    """Decode and preprocess one file (no cache). Draft decoding keeps at least 4x the model's size."""
    gray = read_gray(path, draft=4 * pre.size)
    image, _ = preprocess_array(gray, pre)
    return Decoded(image, dhash256(gray), dhash256(gray[:, ::-1]), tuple(gray.shape))


def _valid_entry(d: Decoded, pre: Preprocess) -> bool:
    """Whether a cache entry has the form `decode_file` gives: a (size, size) float32 image in [0, 1], 32-byte
    hashes. Entries of the wrong shape gave tracebacks, NaN ones a one-line error naming no file (a helper's
    audit). Damage to the bytes of an entry fails np.load's CRC check; an entry rewritten with other valid
    values (all zeros, as a blank image gives) cannot be told from a real one."""
    img = d.image
    return (img.shape == (pre.size, pre.size) and img.dtype == np.float32 and bool(np.isfinite(img).all())
            and float(img.min()) >= 0.0 and float(img.max()) <= 1.0
            and d.dhash.shape == (32,) and d.dhash_mirror.shape == (32,) and len(d.orig_shape) == 2)


_CACHE_WARNED = False  # a cache that cannot be written is said once per process


def load_cached(path: str, pre: Preprocess, use_cache: bool = True) -> tuple[str, Decoded | str]:
    """(sha256, Decoded) for one file, or (sha256, error message). Reads and fills the cache."""
    try:
        sha = file_sha256(path)
    except OSError as e:
        return "", f"{path}: cannot read ({e.strerror or e})"
    cp = _cache_path(sha, pre)
    if use_cache and cp.exists():
        try:
            with np.load(cp) as z:
                d = Decoded(z["image"], z["dhash"], z["dhash_mirror"], tuple(int(v) for v in z["shape"]))
            if not _valid_entry(d, pre):
                raise ValueError("not the form decode_file gives")
            return sha, d
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            log.warning("rebuilding damaged cache entry %s", cp)
    try:
        d = decode_file(path, pre)
    except TumorlensError as e:
        return sha, str(e)
    if use_cache:
        try:
            buf = io.BytesIO()
            np.savez(buf, image=d.image, dhash=d.dhash, dhash_mirror=d.dhash_mirror, shape=np.array(d.orig_shape))
            atomic_write_bytes(cp, buf.getvalue(), fsync=False)  # rebuildable: a damaged entry is re-decoded
        except OSError as e:  # a read-only cache must not stop the run
            global _CACHE_WARNED
            if not _CACHE_WARNED:  # said once per process, not once per image (7,000 lines on the Kaggle set)
                _CACHE_WARNED = True
                log.warning("cannot write the cache (%s), so images are decoded again on every run; set "
                            "TUMORLENS_CACHE_DIR to a writable folder: %s", cp, e)
    return sha, d


def _load_job(args: tuple[str, Preprocess, bool]) -> tuple[str, Decoded | str]:
    return load_cached(*args)


def die_with_parent() -> None:
    """Initializer of worker processes: on Linux, ask the kernel to end this worker (SIGTERM) when the process
    that started it dies, however it dies (SIGKILL included), so that no worker outlives a killed command. A
    no-op elsewhere."""
    import signal
    import sys

    # a worker forked from the CLI inherits its SIGTERM handler (cli.Terminated); Pool.terminate() and the
    # parent's death end workers with SIGTERM, which must end them quietly, not raise inside them
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1 (linux/prctl.h)
    except (OSError, AttributeError):  # no libc symbol: the workers still end with the pool
        pass


# ----------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class Entry:
    path: str  # relative to the dataset root, '/' separated
    label: str
    split: str | None  # 'train' / 'test' from Training/Testing folders, else None


def scan_dataset(root: str | os.PathLike) -> list[Entry]:
    """List every non-hidden file under the class folders of `root` (sorted, relative paths)."""
    root = Path(root)
    if not root.is_dir():
        raise TumorlensError(f"{root}: dataset folder not found")
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    split_dirs = [d for d in subdirs if d.name.lower() in _SPLIT_DIRS]
    bases = [(d, _SPLIT_DIRS[d.name.lower()]) for d in split_dirs] if split_dirs else [(root, None)]
    beside = [d.name for d in subdirs if d not in split_dirs] if split_dirs else []
    if beside:
        # e.g. a Validation/ folder, or class folders at the top level: with Training/ and Testing/ present only
        # those two are read, and images that silently did not count would change every figure
        log.warning("%s: ignored the folder(s) %s beside %s (a dataset is read from Training/ and Testing/, or "
                    "from class folders, not both)", root, ", ".join(f"{n}/" for n in beside),
                    " and ".join(f"{d.name}/" for d in split_dirs))
    entries: list[Entry] = []
    for base, split in bases:
        listing = sorted(base.iterdir())
        class_dirs = [d for d in listing if d.is_dir() and not d.name.startswith(".")]
        loose = [f.name for f in listing if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
        if loose:  # an image beside the class folders has no label: said, not dropped silently
            log.warning("%s: ignored %d image(s) outside the class folders (e.g. %s): an image's class is the "
                        "folder it lies in", base, len(loose), loose[0])
        if not class_dirs:
            raise TumorlensError(f"{base}: no class folders (expected {', '.join(CLASSES)})")
        for cd in class_dirs:
            label = canonical_class(cd.name)
            if label is None:
                raise TumorlensError(f"{cd}: unknown class folder {cd.name!r} (expected {', '.join(CLASSES)})")
            found_before = len(entries)
            for dirpath, dirnames, filenames in os.walk(cd):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for d in dirnames:
                    if os.path.islink(os.path.join(dirpath, d)):
                        log.warning("%s: a symbolic link to a folder, not followed; its images are not read",
                                    Path(dirpath, d).relative_to(root).as_posix())
                    other = canonical_class(d)
                    if other is not None and other != label:
                        # a mis-filed export: its images are labelled by the class folder they lie in
                        log.warning("%s: a folder named for the class %s inside the %s folder; its images are "
                                    "labelled %s", Path(dirpath, d).relative_to(root).as_posix(), other, cd.name,
                                    label)
                for fn in sorted(filenames):
                    if fn.startswith("."):
                        continue
                    full = os.path.join(dirpath, fn)
                    if not os.path.isfile(full) and os.path.exists(full):  # (one stat for a regular file)
                        # a FIFO, socket or device, or a link to one (a link to /dev/zero hung the scan; a
                        # helper's audit): opening it could block forever (a broken link is kept: the loader
                        # reports it)
                        log.warning("skipped %s: not a regular file", Path(full).relative_to(root).as_posix())
                        continue
                    rel = Path(dirpath, fn).relative_to(root).as_posix()
                    try:
                        rel.encode("utf-8")
                    except UnicodeEncodeError:
                        # bytes that are not UTF-8 in the name (or any non-ASCII name under an ASCII locale): split
                        # and audit CSVs are UTF-8, and writing the name ended split, train and audit with a
                        # traceback (a helper's audit)
                        log.warning("skipped %s: its name is not valid UTF-8 text; rename the file",
                                    os.fsencode(rel).decode("utf-8", "backslashreplace"))  # the bytes, as \xfe
                        continue
                    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
                        # a carriage return or other control character: the split CSV (lines end in \n) wrote it
                        # unquoted and could not read itself back, and the run could not resume (an audit)
                        log.warning("skipped %s: its name holds a control character; rename the file",
                                    ascii(rel)[1:-1])
                        continue
                    entries.append(Entry(rel, label, split))
            if len(entries) == found_before:
                log.warning("%s: class folder holds no files", cd.relative_to(root).as_posix() or cd.name)
        missing = sorted(set(CLASSES) - {canonical_class(d.name) for d in class_dirs})
        if missing:
            log.warning("%s: no folder for the class(es) %s", base.relative_to(root).as_posix() if base != root
                        else root, ", ".join(missing))
    if not entries:
        raise TumorlensError(f"{root}: no files found in the class folders")
    return entries


@dataclass
class Dataset:
    """Decoded images of a dataset; `skipped` lists (path, reason) for files that could not be read."""

    root: Path
    entries: list[Entry]
    images: np.ndarray  # (N, size, size) float32
    sha256: list[str]
    dhash: np.ndarray  # (N, 32) uint8
    dhash_mirror: np.ndarray  # (N, 32) uint8
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([CLASSES.index(e.label) for e in self.entries], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.entries]

    def index(self) -> dict[str, int]:
        return {e.path: i for i, e in enumerate(self.entries)}


# unreadable files named one per line; the rest are counted in one line (10,000 notes in a class folder gave
# 10,000 lines; a helper's audit)
MAX_SKIP_LINES = 20


def load_dataset(root: str | os.PathLike, pre: Preprocess = Preprocess(), workers: int | None = None,
                 use_cache: bool = True, progress=None, entries: list[Entry] | None = None) -> Dataset:
    """Decode every image of a class-folder dataset (cached, in parallel); unreadable files are skipped.

    Each skipped file is logged with its reason and counted; a dataset, or a class, with no readable
    image is an error. `progress`, if given, is called with the number of files done so far. `entries`:
    the `scan_dataset(root)` the caller made already (its warnings are not said twice).
    """
    root = Path(root)
    entries = scan_dataset(root) if entries is None else entries
    jobs = [(str(root / e.path), pre, use_cache) for e in entries]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    results: list[tuple[str, Decoded | str]] = []
    if workers > 1 and len(jobs) >= 256:
        import multiprocessing as mp

        # a Pool, whose exit terminates its workers: a ProcessPoolExecutor's exit waits for every queued job,
        # so an interrupted or terminated command went on decoding the dataset (and `kill` left the workers
        # running for good; a helper's audit). 'fork', as ProcessPoolExecutor used on Linux.
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers, initializer=die_with_parent) as pool:
            for r in pool.imap(_load_job, jobs, chunksize=64):
                results.append(r)
                if progress and len(results) % 256 == 0:
                    progress(len(results))
    else:
        for j in jobs:
            results.append(_load_job(j))
            if progress and len(results) % 256 == 0:
                progress(len(results))
    if progress:
        progress(len(results))
    keep, imgs, shas, dh, dhm, skipped = [], [], [], [], [], []
    for e, (sha, r) in zip(entries, results):
        if isinstance(r, str):
            skipped.append((e.path, r))
            if len(skipped) <= MAX_SKIP_LINES:
                log.warning("skipped %s", r)
            continue
        keep.append(e)
        imgs.append(r.image)
        shas.append(sha)
        dh.append(r.dhash)
        dhm.append(r.dhash_mirror)
    if len(skipped) > MAX_SKIP_LINES:
        log.warning("skipped %d more unreadable file(s), not listed one by one (Dataset.skipped holds them all)",
                    len(skipped) - MAX_SKIP_LINES)
    if not keep:
        raise TumorlensError(f"{root}: no readable image ({len(skipped)} file(s) skipped)")
    present = {e.label for e in entries}
    readable = {e.label for e in keep}
    if present - readable:
        raise TumorlensError(f"{root}: class(es) with no readable image: {', '.join(sorted(present - readable))}")
    if skipped:
        log.warning("%d of %d files skipped as unreadable", len(skipped), len(entries))
    return Dataset(root, keep, np.stack(imgs), shas, np.stack(dh), np.stack(dhm), skipped)
