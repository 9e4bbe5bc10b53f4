"""DICOM input, for `readers.read_frames` (which tells formats apart; see its module docstring).

Modality LUT / RescaleSlope+Intercept, then the VOI LUT or WindowCenter/Width when present, else a robust window
from the 0.5th to the 99.5th percentile; MONOCHROME1 inverted so that bright means bright; one frame per frame
of a multi-frame object; non-square pixels resampled to square ones as NIfTI voxels are (`readers.square_pixels`);
compressed transfer syntaxes through pydicom's plugins. pydicom is imported only when a DICOM arrives.
Research use only - not a medical device.
"""
from __future__ import annotations

import io
import logging
import math
import os
from typing import Any

import numpy as np

from .config import NoImageError, TumorlensError
from .data import MAX_PIXELS, MAX_SIDE
from .readers import _GREY, MAX_VOXELS, Frame, colour_stats, hu_air_share, square_pixels

log = logging.getLogger(__name__)

# free-text elements that name what was scanned; refusal.check_header reads them when BodyPartExamined is
# absent (a shoulder MR of the NEMA WG04 set has only StudyDescription SHOULDER)
DESCRIPTIONS = ("StudyDescription", "SeriesDescription", "ProtocolName", "PerformedProcedureStepDescription")


def _spacing_pair(v: Any) -> tuple[float, float] | None:
    """Two finite, positive numbers from a DICOM PixelSpacing-like value (row spacing, column spacing), else
    None: a missing, one-valued, non-numeric, zero or negative value says nothing about the pixel shape."""
    try:
        if v is None or isinstance(v, (str, bytes)) or len(v) != 2:
            return None
        r, c = float(v[0]), float(v[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (r, c) if math.isfinite(r) and math.isfinite(c) and r > 0 and c > 0 else None


def _dicom_pixel_spacing(ds: Any, name: str) -> tuple[tuple[float, float] | None, str | None]:
    """((row spacing, column spacing) in mm, the attribute it came from), or (None, None) when no attribute
    gives a usable pair.

    PixelSpacing (0028,0030) first, then the PixelMeasuresSequence in the SharedFunctionalGroupsSequence (where
    enhanced multi-frame objects keep it), then ImagerPixelSpacing (0018,1164, projection images). A present
    but unusable value is logged, and the next source is tried: the pixels are then taken as square.
    """
    def shared() -> Any:
        groups = ds.get("SharedFunctionalGroupsSequence")
        measures = groups[0].get("PixelMeasuresSequence") if groups else None
        return measures[0].get("PixelSpacing") if measures else None

    sources = (("PixelSpacing", lambda: ds.get("PixelSpacing")),
               ("SharedFunctionalGroupsSequence/PixelMeasuresSequence/PixelSpacing", shared),
               ("ImagerPixelSpacing", lambda: ds.get("ImagerPixelSpacing")))
    for tag, get in sources:
        try:
            raw = get()
        except Exception:  # noqa: BLE001 - pydicom raises several types for a malformed value
            raw = "unreadable"
        if raw is None or (hasattr(raw, "__len__") and len(raw) == 0):
            continue
        pair = _spacing_pair(raw)
        if pair is not None:
            return pair, tag
        log.warning("%s: %s %r is not two positive numbers; ignored", name, tag, raw)
    return None, None


def _window(x: np.ndarray, center: float, width: float, func: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 VOI windowing onto 0..255 (LINEAR, LINEAR_EXACT or SIGMOID)."""
    if func == "SIGMOID":
        return (255.0 / (1.0 + np.exp(-4.0 * (x - center) / max(width, 1e-6)))).astype(np.float32)
    if func == "LINEAR_EXACT":
        w = max(width, 1e-6)
        return (np.clip((x - center) / w + 0.5, 0.0, 1.0) * 255.0).astype(np.float32)
    w = max(width, 1.0)
    if w == 1.0:
        return np.where(x > center - 0.5, 255.0, 0.0).astype(np.float32)
    return (np.clip((x - (center - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0) * 255.0).astype(np.float32)


def _robust_window(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return (np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.float32)


def _first(v: Any) -> float:
    try:
        return float(v[0]) if hasattr(v, "__len__") and not isinstance(v, str) else float(v)
    except (TypeError, ValueError, IndexError):
        return float("nan")


def _image_type(ds: Any) -> list[str]:
    """ImageType's values (e.g. ORIGINAL, PRIMARY, LOCALIZER), upper case; [] when absent or unreadable."""
    try:
        v = ds.get("ImageType")
        values = [v] if isinstance(v, str) else list(v or [])
        return [str(x).strip().upper() for x in values if str(x).strip()]
    except (TypeError, ValueError):
        return []


def _frame_group(ds: Any, i: int, sequence: str) -> Any:
    """The first item of the functional-group `sequence` (e.g. FrameVOILUTSequence) that applies to frame `i` of
    an enhanced (multi-frame) object: its per-frame group, else the shared one; None when there is none."""
    for groups, k in (("PerFrameFunctionalGroupsSequence", i), ("SharedFunctionalGroupsSequence", 0)):
        try:
            seq = ds.get(groups)
            item = seq[k].get(sequence) if seq is not None and len(seq) > k else None
            if item:
                return item[0]
        except (AttributeError, IndexError, KeyError, TypeError):
            continue
    return None


def frame_rescale(v: np.ndarray, ds: Any, i: int) -> np.ndarray:
    """An enhanced object's rescale (PixelValueTransformationSequence of frame `i`), which pydicom's
    apply_modality_lut does not read; a classic object (RescaleSlope at the top level) is left as it is."""
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return v
    item = _frame_group(ds, i, "PixelValueTransformationSequence")
    if item is None:
        return v
    slope, intercept = _first(item.get("RescaleSlope", 1.0)), _first(item.get("RescaleIntercept", 0.0))
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        return v
    return (v * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def _dicom_voi(frame: np.ndarray, ds: Any, name: str, i: int = 0) -> tuple[np.ndarray, str]:
    """Modality-LUT values of frame `i` -> displayable 0..255 float32, and how it was windowed: the VOI LUT, the
    window at the top level, else (enhanced objects) the frame's FrameVOILUTSequence window, else a robust
    percentile window."""
    seq = ds.get("VOILUTSequence")
    if seq:
        from pydicom.pixels import apply_voi_lut

        try:
            item = seq[0]
            # a LUT indexes stored integers: given as integers, pydicom need not warn that a float input "may
            # give incorrect results" (it looks them up the same way)
            src = frame.astype(np.int64) if np.array_equal(frame, np.round(frame)) else frame
            out = apply_voi_lut(src, ds, index=0, prefer_lut=True).astype(np.float32)
            bits = int(item.LUTDescriptor[2])
            top = float(2 ** bits - 1) if 8 <= bits <= 16 else float(out.max() or 1.0)
            return np.clip(out / top, 0, 1).astype(np.float32) * 255.0, "voi_lut"
        except Exception as e:  # a malformed LUT falls back to the window / robust window
            log.warning("%s: VOI LUT not usable (%s); using the window", name, e)
    for src, how in ((ds, "window"), (_frame_group(ds, i, "FrameVOILUTSequence"), "frame window")):
        if src is not None and "WindowCenter" in src and "WindowWidth" in src:
            c, w = _first(src.WindowCenter), _first(src.WindowWidth)
            if np.isfinite(c) and np.isfinite(w) and w > 0:
                func = str(src.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
                return _window(frame, c, w, func), how
    return _robust_window(frame), "percentile"


def _decode_reason(e: Exception) -> str:
    """The first line of a pydicom decode error that says why: "Unable to decode as exceptions were raised by
    all available plugins:" is followed by one "plugin: reason" line per plugin, of which the first is kept."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return lines[1]
    return lines[0] if lines else type(e).__name__


def _has_dicom_elements(ds: Any) -> bool:
    """True when a dataset holds a file meta header or at least one data element of the DICOM dictionary
    (outside group 0000, which a run of zero bytes parses as). Only the tags are looked at: reading values of
    unknown elements would make pydicom warn about each."""
    from pydicom.datadict import dictionary_has_tag

    if len(getattr(ds, "file_meta", None) or ()):
        return True
    return any(tag.group != 0 and dictionary_has_tag(tag) for tag in ds.keys())


def _syntax_as_read(ds: Any, name: str) -> Any:
    """The transfer syntax of a DICOM stored without its file meta header (no preamble, no group 0002: old
    archives and ACR-NEMA-style files), from the encoding pydicom found the data set in, recorded in the data
    set's file meta so that its pixels can be decoded (uncompressed by definition: a compressed syntax cannot be
    read without the header); None when pydicom could not tell."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return None
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if not isinstance(getattr(ds, "file_meta", None), FileMetaDataset):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    log.info("%s: no DICOM file meta header; its data set reads as %s", name, uid.name)
    return uid


def read_dicom(src: str | os.PathLike | bytes, name: str, force: bool) -> list[Frame]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    fp = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    try:
        ds = pydicom.dcmread(fp, force=force)
    except InvalidDicomError as e:
        raise TumorlensError(f"{name}: not a valid DICOM file ({e})") from None
    except Exception as e:  # noqa: BLE001 - pydicom raises struct.error, ValueError, ... on damaged headers
        raise TumorlensError(f"{name}: corrupt or truncated DICOM file ({str(e) or type(e).__name__})") from None
    try:
        forced_junk = force and not _has_dicom_elements(ds)
    except Exception as e:  # noqa: BLE001 - the element tags are parsed lazily: an 8-byte text file gave struct.error
        raise TumorlensError(f"{name}: not a DICOM file ({str(e) or type(e).__name__})") from None
    if forced_junk:
        # a forced read takes any bytes for data elements: a text file gives one element of an unknown tag
        raise TumorlensError(f"{name}: not a DICOM file (no DICOM header and no standard DICOM data elements)")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    body = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    tsuid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsuid is None:
        tsuid = _syntax_as_read(ds, name)
    ts_name = getattr(tsuid, "name", str(tsuid)) if tsuid else "unknown transfer syntax"
    info: dict[str, Any] = {"format": "DICOM", "modality": modality or None, "body_part": body or None,
                            "transfer_syntax": ts_name,
                            "photometric": str(ds.get("PhotometricInterpretation", "") or "") or None,
                            "series": str(ds.get("SeriesDescription", "") or "") or None,
                            "descriptions": {k: str(ds.get(k, "") or "").strip() for k in DESCRIPTIONS
                                             if str(ds.get(k, "") or "").strip()},
                            "image_type": _image_type(ds)}
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
        what = f" ({getattr(sop, 'name', sop)})" if sop else ""
        raise NoImageError(f"{name}: DICOM file has no pixel data{what}")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        nf = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise TumorlensError(f"{name}: DICOM image lacks Rows/Columns") from None
    if rows * cols > MAX_PIXELS or max(rows, cols) > MAX_SIDE or rows * cols * nf > MAX_VOXELS:
        raise TumorlensError(f"{name}: DICOM image claims {nf} frame(s) of {cols}x{rows} pixels, over the limit")
    if rows < 8 or cols < 8:
        raise TumorlensError(f"{name}: image is only {cols}x{rows} pixels")
    # pydicom logs every failed decoder plugin at ERROR with a traceback (~40 lines for one corrupt file) before
    # it raises; the raised error says the same in one line, so its logger is quiet during the decode
    pd_log = logging.getLogger("pydicom")
    level = pd_log.level
    pd_log.setLevel(logging.CRITICAL)
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as e:
        if tsuid is not None and getattr(tsuid, "is_compressed", False):
            # pydicom cannot tell "no plugin for this syntax" from "every plugin rejected the data", so
            # the message covers both, with the first plugin's reason
            raise TumorlensError(f"{name}: cannot decode its compressed pixel data (transfer syntax {ts_name}, "
                                 f"{tsuid}): corrupt data or no installed decoder ({_decode_reason(e)})") from None
        raise TumorlensError(f"{name}: cannot decode DICOM pixel data ({str(e).splitlines()[0]})") from None
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError) as e:
        raise TumorlensError(f"{name}: corrupt or truncated DICOM pixel data ({str(e) or type(e).__name__})") from None
    finally:
        pd_log.setLevel(level)
    photo = (info["photometric"] or "MONOCHROME2").upper()
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    colour = spp > 1 or photo == "PALETTE COLOR"
    if photo == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            arr = apply_color_lut(arr, ds)
            arr = arr / (arr.max() or 1) * 255.0
        except Exception as e:
            raise TumorlensError(f"{name}: cannot apply the DICOM palette ({e})") from None
    # frames axis first
    if colour:
        arr = arr[None] if arr.ndim == 3 else arr
    else:
        arr = arr[None] if arr.ndim == 2 else arr
    info["colour"] = bool(colour)
    info["n_frames"] = int(arr.shape[0])
    spacing, spacing_tag = _dicom_pixel_spacing(ds, name)
    info["pixel_spacing"] = [round(v, 6) for v in spacing] if spacing else None
    info["pixel_spacing_from"] = spacing_tag
    row_mm, col_mm = spacing or (1.0, 1.0)  # no usable spacing: the pixels are taken as square

    def square(g: np.ndarray) -> np.ndarray:
        # PixelSpacing is (row spacing = pixel height, column spacing = pixel width)
        return square_pixels(g, col_mm, row_mm)
    frames: list[Frame] = []
    if colour:  # colour data has no modality LUT or VOI window
        for i, f in enumerate(arr):
            f = f.astype(np.float32)
            if f.max() > 255:
                f = f / f.max() * 255.0
            c = colour_stats(f)
            gray = f[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            frames.append(Frame(square(gray.astype(np.float32)), {"frame": i} if arr.shape[0] > 1 else {},
                                {**info, **c, "window": "none"}))
        return frames
    from pydicom.pixels import apply_modality_lut

    for i, f in enumerate(arr):
        try:
            v = frame_rescale(apply_modality_lut(f, ds).astype(np.float32), ds, i)
        except Exception as e:  # a malformed rescale is reported, not guessed
            raise TumorlensError(f"{name}: cannot apply the DICOM rescale / modality LUT ({e})") from None
        hu_air = hu_air_share(v)
        g, how = _dicom_voi(v, ds, name, i)
        if photo == "MONOCHROME1":
            g = 255.0 - g
        g = square(np.ascontiguousarray(g, dtype=np.float32))
        frames.append(Frame(np.ascontiguousarray(g, dtype=np.float32), {"frame": i} if arr.shape[0] > 1 else {},
                            {**info, **_GREY, "window": how, "hu_air": hu_air}))
    return frames
