"""Shared helpers for the reader / refusal / predict tests: file makers and a tiny trained checkpoint."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tumorlens.synthetic import _slice_rng, make_slice

_CKPT: dict[str, Path] = {}


def phantom(label: str = "glioma", i: int = 0, size: int = 256) -> np.ndarray:
    return make_slice(label, _slice_rng(11, ["glioma", "meningioma", "notumor", "pituitary"].index(label), i), size)[0]


def encode(a: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    im = a if isinstance(a, Image.Image) else Image.fromarray(a)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A PNG whose header claims w x h pixels (no real pixel data follows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def dicom_bytes(frames: np.ndarray, photometric: str = "MONOCHROME2", modality: str | None = "MR",
                slope: float | None = None, intercept: float | None = None, wc: float | None = None,
                ww: float | None = None, body_part: str | None = None, pixels: bool = True,
                preamble: bool = True) -> bytes:
    """An uncompressed DICOM (explicit VR little endian) of uint16 frames (H, W) or (F, H, W)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    a = np.asarray(frames)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if modality:
        ds.Modality = modality
    if body_part:
        ds.BodyPartExamined = body_part
    ds.Rows, ds.Columns = int(a.shape[-2]), int(a.shape[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if a.ndim == 3:
        ds.NumberOfFrames = int(a.shape[0])
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    if wc is not None:
        ds.WindowCenter, ds.WindowWidth = wc, ww
    if pixels:
        ds.PixelData = np.ascontiguousarray(a, dtype=np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=preamble, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def nifti_bytes(vol: np.ndarray, affine: np.ndarray | None = None, gz: bool = False) -> bytes:
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(vol, dtype=np.float32), np.eye(4) if affine is None else affine)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def tiny_data(n_per_class: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Phantoms preprocessed exactly as the Predictor does (head crop, normalisation), for training."""
    from tumorlens.config import CLASSES, Preprocess
    from tumorlens.data import preprocess_array

    pre = Preprocess(size=size)
    xs, ys = [], []
    for ci, label in enumerate(CLASSES):
        for i in range(n_per_class):
            img = make_slice(label, _slice_rng(seed, ci, i), 192)[0].astype(np.float32)
            xs.append(preprocess_array(img, pre)[0])
            ys.append(ci)
    return np.stack(xs), np.array(ys, dtype=np.int64)


def tiny_checkpoint(root: Path) -> Path:
    """A small TumorNet trained briefly on phantoms (1 thread), finalized with abstention and refusal.

    Built once per test session (cached by the first `root` given).
    """
    if "ckpt" in _CKPT and _CKPT["ckpt"].exists():
        return _CKPT["ckpt"]
    import torch

    from tumorlens.config import ModelConfig, TrainConfig
    from tumorlens.refusal import finalize_checkpoint
    from tumorlens.train import SplitData, train

    torch.set_num_threads(1)
    X, y = tiny_data(24, 0)
    Xv, yv = tiny_data(8, 1)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, threads=1, augment=False,
                      model=ModelConfig(channels=(8, 16, 32, 32), lstm_hidden=16, dense=16))
    tr = SplitData(torch.from_numpy(X).unsqueeze(1), torch.from_numpy(y), [])
    va = SplitData(torch.from_numpy(Xv).unsqueeze(1), torch.from_numpy(yv), [])
    meta = {"split": {"strategy": "stratified", "table": [{"class": "glioma", "train": 24, "val": 8, "test": 0,
                                                            "test_fraction": 0.0}]}}
    ck = train(cfg, tr, va, Path(root) / "run", meta=meta)
    finalize_checkpoint(ck, X, Xv, yv, y_train=y)
    _CKPT["ckpt"] = ck
    return ck


def blank_maps_for(monkeypatch, shape: tuple[int, int]) -> None:
    """Make `explain.explain_slice` give an all-zero map for inputs of original size `shape` (the real map for
    others): no small input reliably yields an empty map with the test models."""
    import tumorlens.explain as ex

    real = ex.explain_slice

    def blank_for_shape(model, x, box, orig_shape, target=None, method=None):
        heat = real(model, x, box, orig_shape, target=target, method=method)
        return np.zeros_like(heat) if tuple(orig_shape) == tuple(shape) else heat

    monkeypatch.setattr(ex, "explain_slice", blank_for_shape)


def spy_overlays(monkeypatch) -> dict[str, str]:
    """{overlay file name: its title}, in writing order, for every overlay the CLI writes (the real
    `explain.overlay_png` still writes each one)."""
    import tumorlens.explain as ex

    seen: dict[str, str] = {}
    real = ex.overlay_png

    def spy(gray, heat, path, title="", **kw):
        seen[Path(path).name] = title
        return real(gray, heat, path, title, **kw)

    monkeypatch.setattr(ex, "overlay_png", spy)
    return seen
