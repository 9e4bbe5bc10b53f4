"""Turn one input - a path, or bytes plus a name - into 2-D grayscale frames the model can read.

Formats, told apart by content first and by name second:

* **2-D images** (PNG, JPEG, BMP, TIFF, anything Pillow opens): decoded exactly as `data.read_gray` does
  (same pixel limit, same errors, same JPEG *draft* decoding), so a file gives the model the same input
  here as in training. A multi-page file (TIFF stack, animated GIF) gives one frame per page, as a
  multi-frame DICOM does (training reads the first page of such a file, and says so).
* **DICOM** (`.dcm`, or any name, recognised by `DICM` at byte 128; `.dcm` files without that preamble are
  read too): Modality LUT / RescaleSlope+Intercept, then the VOI LUT or WindowCenter/Width when present,
  else a robust window from the 0.5th to the 99.5th percentile; MONOCHROME1 is inverted so that bright means
  bright; a multi-frame object gives one frame per frame. Non-square pixels (PixelSpacing, else the shared
  functional groups' PixelSpacing of an enhanced multi-frame object, else ImagerPixelSpacing, differing by
  more than 1 %) are resampled to square pixels exactly as NIfTI slices are, so the model and the overlay see
  the anatomy in its true proportions. Compressed transfer syntaxes decode when pydicom
  has a plugin for them (pylibjpeg-libjpeg: JPEG, JPEG-LS; pylibjpeg-openjpeg: JPEG 2000; RLE and deflate
  are built in); otherwise the error names the transfer syntax.
* **NIfTI** (`.nii`, `.nii.gz`, or a NIfTI-1/2 header): reoriented with `nibabel.as_closest_canonical`
  (RAS+: the third axis runs inferior -> superior) and cut into axial slices, shown in the radiological
  convention (anterior at the top, the patient's right on the left), resampled to square pixels when the
  in-plane voxel size differs. `slice=k` picks slice k (0 = most inferior, counted after reorientation).
  Without it a sensible subset is taken, see `auto_slices`: the middle 60 % of the slices that contain
  head, at most `MAX_AUTO_SLICES`, evenly spaced. A 4-D image with more than one volume is an error.

Each frame carries `info`: `format`, and what the refusal checks use - `colour` and `colourfulness` (of the
RGB source, before the grayscale conversion; 0 for grayscale sources) and, for DICOM, `modality`,
`body_part` and `pixel_spacing` ([row, column] spacing in mm as read, or None). Every failure is a `TumorlensError` whose message reads "name: problem".

pydicom and nibabel are imported only when a DICOM or NIfTI input arrives. The DICOM reading itself lives in
`readers_dicom.py`.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import logging
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from .config import TumorlensError
from .data import decode_image, image_error, resize

log = logging.getLogger(__name__)

MAX_VOXELS = 300_000_000  # a DICOM series or NIfTI volume above this is refused before decoding
# a .nii.gz held in memory is decompressed at most this far: MAX_VOXELS at NIfTI's widest real voxel (float128,
# 16 bytes) plus room for the header and its extensions. A file's own header usually allows far less (see
# `_gunzip_nifti`); both stop a small gzip bomb (2 MB of gzip -> 2 GiB of zeros) before it fills the memory
NIFTI_HEADER_MARGIN = 1 << 20
MAX_NIFTI_BYTES = MAX_VOXELS * 16 + NIFTI_HEADER_MARGIN
MAX_AUTO_SLICES = 24  # NIfTI slices classified when no slice is named
HEAD_SLICE_FRACTION = 0.6  # ... taken from the middle of the slices containing head
COLOUR_SAMPLE = 64  # colourfulness is measured on a thumbnail of about this many pixels a side
REJECT_MODALITIES = {
    "CT": "computed tomography", "US": "ultrasound", "NM": "nuclear medicine", "PT": "PET",
    "CR": "computed radiography", "DX": "digital radiography", "MG": "mammography", "XA": "X-ray angiography",
    "RF": "radio fluoroscopy", "IO": "intra-oral radiography", "PX": "panoramic X-ray", "OP": "ophthalmic photography",
    "XC": "external camera photography", "ES": "endoscopy", "SM": "slide microscopy", "GM": "general microscopy",
    "OCT": "optical coherence tomography", "BMD": "bone densitometry", "RTDOSE": "radiotherapy dose",
    "RTIMAGE": "radiotherapy image", "RTSTRUCT": "radiotherapy structure set", "SEG": "segmentation",
    "SR": "structured report", "ECG": "electrocardiogram", "KO": "key object selection", "PR": "presentation state",
}


@dataclass
class Frame:
    """One 2-D slice: raw intensities (float32), where it sits in its file, and what is known about it."""

    gray: np.ndarray
    where: dict[str, int] = field(default_factory=dict)  # {} | {'frame': i} | {'slice': k}
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ helpers
def colour_stats(rgb: np.ndarray) -> dict[str, float]:
    """How colourful an (H, W, 3) array on a 0..255 scale is, measured on a thumbnail.

    colourfulness: Hasler & Suesstrunk (2003), M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 +
      mean(yb)^2), rg = R - G, yb = (R + G)/2 - B. Grey scores 0 (JPEG chroma noise adds about 1); colour
      photographs score about 15-100; a grey MRI with a small coloured logo banner can reach 30.
    colour_fraction: the share of pixels whose chroma, max(R, G, B) - min(R, G, B), exceeds 32 - large for
      photographs and colour-mapped images, a few per cent for a grey scan with a coloured banner.
    """
    a = np.asarray(rgb, dtype=np.float32)
    step = max(1, int(max(a.shape[0], a.shape[1]) // COLOUR_SAMPLE))
    a = a[::step, ::step, :3]
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    m = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    chroma = a.max(axis=-1) - a.min(axis=-1)
    return {"colourfulness": round(m, 3), "colour_fraction": round(float((chroma > 32).mean()), 4)}


_GREY = {"colourfulness": 0.0, "colour_fraction": 0.0}
# CT values are Hounsfield units, air at -1000: a CT volume or frame has a good share of its values in this band
# (the air around the body). Magnitude MRI is non-negative, so MRI never fills it; a phase image, spread evenly
# over -4096..4096, puts 2.4 % there (refusal.HU_AIR_MIN is 5 %)
HU_AIR_BAND = (-1100.0, -900.0)


def hu_air_share(values: np.ndarray) -> float:
    """Share of `values` (before any windowing) in the band of air in Hounsfield units (`HU_AIR_BAND`)."""
    v = np.asarray(values)
    if v.size == 0:
        return 0.0
    lo, hi = HU_AIR_BAND
    return round(float(np.count_nonzero((v >= lo) & (v <= hi))) / v.size, 4)


def _is_dicom(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _nifti_kind(head: bytes, name: str) -> str | None:
    """'nii' / 'nii.gz' when the name or the header says NIfTI, else None."""
    low = name.lower()
    if low.endswith(".nii.gz"):
        return "nii.gz"
    if low.endswith(".nii"):
        return "nii"
    if len(head) >= 348:
        n1 = int.from_bytes(head[:4], "little") in (348,) or int.from_bytes(head[:4], "big") in (348,)
        if n1 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
            return "nii"
        n2 = int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
        if n2 and head[4:8] == b"n+2\x00":
            return "nii"
    return None


# ----------------------------------------------------------------------------------- 2-D images
def _read_pages(src: str | os.PathLike | bytes, name: str, draft: int | None) -> list[Frame]:
    """Every page of a 2-D image file, one frame each (`where` {'frame': i} when there are several): a
    multi-page TIFF (a stack of slices exported from a viewer) or an animated GIF is answered page by page, as a
    multi-frame DICOM is; only its first page had been read, and the web app had not said so."""
    first, pages = _read_image(src, name, draft, 0)
    if pages <= 1:
        return [first]
    first.where = {"frame": 0}
    frames = [first]
    total = first.gray.size
    for i in range(1, pages):
        # the limit of a DICOM series or NIfTI volume, for all pages together: each page is within the image
        # limits, but a file of thousands of them would fill the memory (pages may differ in size: counted)
        if total + (total // i) > MAX_VOXELS:
            raise TumorlensError(f"{name}: {pages} pages of about {total // i:,} pixels each, over the limit of "
                                 f"{MAX_VOXELS:,} pixels for one file")
        f = _read_image(src, name, draft, i)[0]
        total += f.gray.size
        f.where = {"frame": i}
        frames.append(f)
    return frames


def _read_image(src: str | os.PathLike | bytes, name: str, draft: int | None, page: int = 0) -> tuple[Frame, int]:
    """Pillow decode of one page through `data.decode_image` (the same checks and conversion), plus colour
    information; and how many pages the file has."""
    fp = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    info: dict[str, Any] = {}
    colour = dict(_GREY)
    n_pages = [1]

    def inspect(im: Image.Image, mode: str, size: tuple[int, int]) -> None:
        info.update({"format": im.format or "image", "mode": mode, "size": list(size),
                     "colour": mode in _COLOUR_MODES})
        n_pages[0] = int(getattr(im, "n_frames", 1))
        if info["colour"] and not (draft and im.format == "JPEG" and mode == "RGB"):
            thumb = im.copy()
            thumb.thumbnail((COLOUR_SAMPLE * 2, COLOUR_SAMPLE * 2))
            colour.update(colour_stats(np.asarray(thumb.convert("RGB"))))

    gray = decode_image(fp, name, draft, inspect, page)
    if draft and info["format"] == "JPEG" and info["mode"] == "RGB":
        # the draft decode went straight to luma; the chroma comes from a 1/8-scale decode (fast)
        if not isinstance(fp, (str, os.PathLike)):
            fp.seek(0)
        try:
            with Image.open(fp) as im2:
                im2.draft("RGB", (COLOUR_SAMPLE, COLOUR_SAMPLE))
                colour.update(colour_stats(np.asarray(im2.convert("RGB"))))
        except Exception as e:  # noqa: BLE001 - same one-line errors as the first decode
            raise image_error(name, e) from None
    info.update(colour)
    return Frame(gray, {}, info), n_pages[0]


_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV")


def square_pixels(g: np.ndarray, col_size: float, row_size: float) -> np.ndarray:
    """A 2-D slice whose pixels are `col_size` wide and `row_size` high -> the same slice with square pixels.

    The coarser axis is stretched (bilinear, `data.resize`) so that no detail is thrown away; sizes that differ
    by at most 1 % leave the array untouched (the very same object), so square-pixel inputs keep their pixels
    exactly. Used for NIfTI voxel sizes and DICOM PixelSpacing alike, so both formats give the same image.
    """
    if not (col_size > 0 and row_size > 0) or abs(col_size / row_size - 1.0) <= 0.01:
        return g
    h, w = g.shape
    if col_size > row_size:
        return resize(g, (h, max(1, int(round(w * col_size / row_size)))))
    return resize(g, (max(1, int(round(h * row_size / col_size))), w))


# ---------------------------------------------------------------------------------------- NIfTI
F32_MAX = float(np.finfo(np.float32).max)
# a volume whose in-plane (axial) voxel side is over this many times its smallest side was acquired as thick
# slices in another plane: its axial slices would be rebuilt from blocks
THICK_RATIO = 2.5


def _dark_background(vol: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A skull-stripped, intensity-normalised volume (z-scored: brain values below and above 0, the background
    exactly 0, as BraTS and nnU-Net pipelines write them) with its background set to the volume's minimum,
    so that it is dark as in any scan (preprocessing takes the lowest value for background); else unchanged.
    Returns the volume and a note of what was done, or None."""
    if vol.size == 0 or float(vol.min()) >= 0:
        return vol, None
    zero = vol == 0
    share = float(np.count_nonzero(zero)) / vol.size
    if share < 0.2:
        return vol, None
    out = vol.copy()
    out[zero] = float(vol.min())
    return out, f"zero background of an intensity-normalised volume ({100 * share:.0f}% of voxels) set to its minimum"


def _reformat_of_thick_slices(zooms: list[float]) -> str | None:
    """Why the axial slices of a volume with these (RAS) voxel sizes are not worth classifying: a stack of
    thick sagittal or coronal slices (e.g. 5 mm apart, 1 mm in plane) gives axial slices rebuilt from
    blocks, unlike any slice a scanner shows; None for axial stacks and near-isotropic volumes."""
    x, y, z = (float(v) if v and np.isfinite(v) and v > 0 else 1.0 for v in zooms[:3])
    # the slices run across the axis of the largest spacing; axial stacks (z largest) are cut as acquired
    if z >= max(x, y) or max(x, y) <= THICK_RATIO * min(x, y, z):
        return None
    plane = "sagittal" if x >= y else "coronal"
    return (f"NIfTI volume of {plane} slices {max(x, y):g} mm apart ({x:g} x {y:g} x {z:g} mm voxels): its axial "
            f"slices would be rebuilt from {max(x, y):g} mm blocks; only axial slices are cut from NIfTI - send "
            f"the {plane} slices as images (PNG or DICOM) instead")


def auto_slices(vol: np.ndarray, limit: int = MAX_AUTO_SLICES) -> list[int]:
    """Indices of axial slices worth classifying in an (X, Y, Z) volume, inferior first.

    A slice "contains head" when its foreground (voxels above 10 % of the volume's robust range) covers at
    least a quarter of the largest slice's foreground. Of the run from the first to the last such slice,
    the middle `HEAD_SLICE_FRACTION` (60 %) is kept - the end slices are skull base and vertex, unlike the
    training slices - and at most `limit` evenly spaced slices of it are returned. A volume with no
    foreground gives its middle slice.
    """
    z = vol.shape[2]
    lo, hi = np.percentile(vol, [1.0, 99.0])
    if hi <= lo:
        return [z // 2]
    area = (vol > lo + 0.1 * (hi - lo)).sum(axis=(0, 1))
    ok = np.flatnonzero(area >= 0.25 * area.max())
    if ok.size == 0:
        return [z // 2]
    first, last = int(ok[0]), int(ok[-1])
    n = last - first + 1
    cut = (1.0 - HEAD_SLICE_FRACTION) / 2.0
    a = first + int(np.floor(cut * n))
    b = max(a, first + int(np.ceil((1.0 - cut) * n)) - 1)
    idx = np.arange(a, b + 1)
    if idx.size > limit:
        idx = idx[np.round(np.linspace(0, idx.size - 1, limit)).astype(int)]
    return sorted({int(i) for i in idx})


def _nifti_bytes_needed(head: bytes) -> int | None:
    """The size a NIfTI-1 or NIfTI-2 file with this (decompressed) header has: the voxel data's offset plus
    its voxels times their size. None when `head` is no NIfTI header (its first four bytes, read either way
    round, are neither 348 nor 540) or declares impossible dimensions or voxel size."""
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            off = struct.unpack(order + "f", head[108:112])[0]
            offset = int(off) if math.isfinite(off) else 0
            base = 352
            break
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            dims = struct.unpack(order + "8q", head[16:80])
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            offset = struct.unpack(order + "q", head[168:176])[0]
            base = 544
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 0 for d in dims[1:ndim + 1]) or bitpix <= 0:
        return None
    return max(base, offset) + int(np.prod([int(d) for d in dims[1:ndim + 1]], dtype=object)) * bitpix // 8


def _gunzip_nifti(raw: bytes, name: str, cap: int | None = None) -> bytes:
    """A gzipped NIfTI file's bytes, decompressed piece by piece and never past what the file may hold.

    The limit is the size its header declares (voxel offset + voxels x voxel size) plus `NIFTI_HEADER_MARGIN`,
    and never more than `cap` (MAX_NIFTI_BYTES: MAX_VOXELS at the widest data type); output that does not begin
    with a NIfTI header gets only the margin. Raises TumorlensError("name: NIfTI volume decompresses
    to more than N MB") past the limit; damaged gzip data raises what gzip raises (the caller reports it).
    """
    cap = MAX_NIFTI_BYTES if cap is None else cap
    step = 1 << 20
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
        head = gz.read(544)
        chunks = [head]
        total = len(head)
        need = _nifti_bytes_needed(head)
        limit = min(cap, (need if need is not None else len(head)) + NIFTI_HEADER_MARGIN)
        while True:
            piece = gz.read(min(step, limit + 1 - total))
            if not piece:
                break
            chunks.append(piece)
            total += len(piece)
            if total > limit:
                raise TumorlensError(f"{name}: NIfTI volume decompresses to more than {limit / 1e6:,.1f} MB"
                                     + (f" (its header declares {need:,} bytes)" if need is not None else
                                        " and holds no NIfTI header"))
    return b"".join(chunks)


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Python warnings off, and nibabel's own logger at CRITICAL (its ERROR notes, such as "data code 4365 not
    recognized" for a file that is no NIfTI, are in our one-line error already), for the duration."""
    nib_log = logging.getLogger("nibabel.global")
    level = nib_log.level
    nib_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        nib_log.setLevel(level)


def _read_nifti(src: str | os.PathLike | bytes, name: str, kind: str, slice_: int | None) -> list[Frame]:
    import nibabel as nib

    # nibabel's and numpy's notes on odd headers (zero pixdim, a singular affine) and casts are not for the
    # user's stderr: what matters is checked here and said in one line
    with _quiet_nibabel():
        try:
            if isinstance(src, (bytes, bytearray, memoryview)):
                raw = bytes(src)
                if raw[:2] == b"\x1f\x8b":
                    raw = _gunzip_nifti(raw, name)
                cls = nib.Nifti2Image if int.from_bytes(raw[:4], "little") == 540 or \
                    int.from_bytes(raw[:4], "big") == 540 else nib.Nifti1Image
                img = cls.from_bytes(raw)
            else:
                img = nib.load(str(src))
            shape = tuple(int(s) for s in img.shape)
            while len(shape) > 3 and shape[-1] == 1:
                shape = shape[:-1]
            if len(shape) > 3:
                raise TumorlensError(f"{name}: NIfTI image is {len(shape)}-D {shape}; only 2-D or 3-D (one volume) "
                                     f"images are supported - extract one volume first")
            if int(np.prod(shape)) > MAX_VOXELS:
                raise TumorlensError(f"{name}: NIfTI image has {int(np.prod(shape)):,} voxels, over the limit")
            from .data import MAX_SIDE

            if max(shape) > MAX_SIDE:
                raise TumorlensError(f"{name}: NIfTI image is {shape}, a side over the {MAX_SIDE} limit")
            if len(shape) < 3:
                shape = shape + (1,) * (3 - len(shape))
            dt = img.get_data_dtype()
            if dt.kind == "c" or dt.names:  # complex (e.g. raw k-space or phase data) or RGB voxels: no magnitude image
                raise TumorlensError(f"{name}: NIfTI voxels are {'complex' if dt.kind == 'c' else 'RGB'} ({dt}); only "
                                     f"real-valued grayscale volumes are supported (save the magnitude image)")
            if dt.kind == "f" and dt.itemsize > 4:  # float64 on disk: values past float32 would become inf
                raw_data = np.asarray(img.dataobj)
                biggest = float(np.abs(raw_data[np.isfinite(raw_data)]).max(initial=0.0))
                if biggest > F32_MAX:
                    raise TumorlensError(f"{name}: NIfTI values exceed the float32 range (up to {biggest:.3g}); "
                                         f"rescale the volume")
                data = raw_data.astype(np.float32).reshape(shape)
            else:  # read straight into float32, as before: no float64 copy of a large integer volume
                data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
            if not (img.header.get("qform_code", 0) or img.header.get("sform_code", 0)):
                log.warning("%s: NIfTI header holds no orientation (qform and sform codes 0): shown as nibabel "
                            "reads such files, which may be mirrored", name)
            try:
                can = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
            except Exception:  # noqa: BLE001 - nibabel's message prints the whole matrix
                raise TumorlensError(f"{name}: the NIfTI affine (voxel-to-world matrix) is singular or invalid; "
                                     f"its slices cannot be oriented") from None
            vol = np.asarray(can.dataobj, dtype=np.float32)
            zooms = [float(z) for z in can.header.get_zooms()[:3]]
        except TumorlensError:
            raise
        except MemoryError:
            raise TumorlensError(f"{name}: NIfTI image too large to load") from None
        except Exception as e:  # nibabel raises many types for damaged files
            raise TumorlensError(f"{name}: corrupt or unreadable NIfTI file ({str(e) or type(e).__name__})") from None
    vol = np.nan_to_num(vol, nan=0.0, posinf=0.0, neginf=0.0)
    vol, background = _dark_background(vol)
    thick = _reformat_of_thick_slices(zooms)
    if thick:
        raise TumorlensError(f"{name}: {thick}")
    nz = vol.shape[2]
    # a header may declare a zero-length axis; checked after reorientation, which can move it to the third
    if nz == 0:
        raise TumorlensError(f"{name}: NIfTI volume has no slices (shape {tuple(vol.shape)})")
    if vol.size == 0:
        raise TumorlensError(f"{name}: NIfTI volume is empty (shape {tuple(vol.shape)})")
    if slice_ is not None:
        if not 0 <= int(slice_) < nz:
            raise TumorlensError(f"{name}: slice {slice_} is out of range (the image has {nz} axial slices, 0..{nz - 1})")
        picks = [int(slice_)]
    else:
        picks = auto_slices(vol)
        log.info("%s: %d of its %d axial slices (%s; the middle of the head, readers.auto_slices); --slice N "
                 "picks one", name, len(picks), nz, ", ".join(map(str, picks)))
    info = {"format": "NIfTI", "modality": None, "body_part": None, "colour": False, **_GREY,
            "hu_air": hu_air_share(vol), "background": background, "shape": list(vol.shape),
            "voxel_size": [round(z, 4) for z in zooms], "n_slices": nz,
            "orientation": "RAS (as_closest_canonical)", "auto_slices": slice_ is None}
    frames = []
    for k in picks:
        g = np.ascontiguousarray(vol[::-1, ::-1, k].T)  # rows: anterior -> posterior; columns: right -> left
        g = square_pixels(g, zooms[0] or 1.0, zooms[1] or 1.0)  # columns run along x, rows along y
        if min(g.shape) < 8:
            raise TumorlensError(f"{name}: axial slices are only {g.shape[1]}x{g.shape[0]} pixels")
        frames.append(Frame(g.astype(np.float32), {"slice": k}, dict(info)))
    return frames


# ------------------------------------------------------------------------------------------ entry
def _dicom(src: str | os.PathLike | bytes, name: str, force: bool) -> list[Frame]:
    """`readers_dicom.read_dicom`, imported on first use (it imports this module, and pydicom when called)."""
    from .readers_dicom import read_dicom

    return read_dicom(src, name, force)


IN_MEMORY_LIMIT = 64 * 1024 * 1024  # files up to this size are read whole, once, before decoding


def read_frames(src: str | os.PathLike | bytes, name: str | None = None, slice: int | None = None,
                draft: int | None = None) -> list[Frame]:
    """Frames of one input: a path, or the bytes of an upload together with its file name.

    `slice` selects one axial NIfTI slice; `draft` (2-D JPEGs only) lets the decoder downscale while both
    sides stay >= draft pixels, exactly as training decodes (`data.read_gray(path, draft=4 * size)`).
    Raises TumorlensError("name: problem") for anything that cannot be read. Bytes are never written to disk.
    """
    is_bytes = isinstance(src, (bytes, bytearray, memoryview))
    if is_bytes:
        name = name or "<upload>"
        head = bytes(src[:352])
        if len(src) == 0:
            raise TumorlensError(f"{name}: empty file (0 bytes)")
    else:
        name = name or str(src)
        p = Path(src)
        try:
            size = p.stat().st_size
            if p.is_dir():
                raise TumorlensError(f"{name}: is a folder, not a file")
            if size == 0:
                raise TumorlensError(f"{name}: empty file (0 bytes)")
            with open(p, "rb") as f:
                # a file up to IN_MEMORY_LIMIT is read once, whole, and then handled like an upload: Pillow's
                # many small reads of a PNG's chunks from a file cost ~0.3 ms of a 256-px slice's ~2.5 ms
                # (measured); the pixels are the same
                data = f.read() if size <= IN_MEMORY_LIMIT else f.read(352)
        except OSError as e:
            raise TumorlensError(f"{name}: cannot read ({e.strerror or e})") from None
        head = data[:352]
        if size <= IN_MEMORY_LIMIT:
            src = data
    low = name.lower()
    if _is_dicom(head):
        return _dicom(src, name, force=False)
    kind = _nifti_kind(head, name)
    if kind:
        return _read_nifti(src, name, kind, slice)
    if low.endswith((".dcm", ".dicom")):
        return _dicom(src, name, force=True)
    try:
        return _read_pages(src, name, draft)
    except TumorlensError as e:
        # a DICOM without the 128-byte preamble and without an extension: try once, keep the image error
        if "not an image file" in str(e) and not Path(low).suffix:
            try:
                frames = _dicom(src, name, force=True)
            except TumorlensError:
                raise e from None
            return frames
        raise
