"""Tumour masks for training images: a mask folder beside the dataset, or borrowed from figshare.

Two sources, tried in order:
* `<dataset>_masks/<same relative path, .png>` beside the dataset folder (what `synthetic.make_dataset` writes
  for the phantoms; any dataset laid out the same way works);
* for the Kaggle set: the Kaggle set ships no masks, but 4,750 of its 5,023 tumour images are (possibly mirrored) copies of
figshare slices, which have expert masks; `KAGGLE_TO_FIGSHARE.csv` beside the dataset names the slice and
the orientation (its README: "borrow tumor masks (flip them left-right for mirrored_lr rows)"). A no-tumour
image's mask is empty by definition. Tumour images without a confident match get no mask (weight 0).

Masks go through the image's own crop box and resize, so mask and network input stay aligned; the result
is a soft mask in [0, 1] at the network's input size. Used by training's optional mask-guidance loss
(`TrainConfig.seg_weight`), never at prediction time.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .config import Preprocess, TumorlensError
from .data import Dataset, cache_dir, crop_square, head_box, map_box, read_gray, resize
from .fileio import atomic_write_bytes

log = logging.getLogger(__name__)

MAP_FILE = "KAGGLE_TO_FIGSHARE.csv"
MIN_CORRELATION = 0.97  # as groups-figshare-fold.csv (the dataset README): matches are bimodal around it


def find_figshare(data_root: Path) -> Path | None:
    """The figshare folder: `$TUMORLENS_FIGSHARE_DIR`, else `figshare-brain-tumor` beside the dataset."""
    env = os.environ.get("TUMORLENS_FIGSHARE_DIR")
    cand = Path(env) if env else data_root.parent / "figshare-brain-tumor"
    return cand if (cand / "metadata.csv").exists() else None


def read_mapping(data_root: Path) -> dict[str, tuple[str, bool]]:
    """Kaggle relative path -> (figshare index, mirrored) for confident, label-consistent matches."""
    path = data_root / MAP_FILE
    out: dict[str, tuple[str, bool]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                ok = float(r["correlation"]) >= MIN_CORRELATION and r.get("label_agrees", "1") == "1"
            except (KeyError, ValueError):
                raise TumorlensError(f"{path}: unexpected columns or values (row {r})") from None
            if ok:
                out[r["kaggle_path"]] = (r["figshare_index"], r["orientation_vs_figshare_jpg"] == "mirrored_lr")
    return out


def mask_folder(data_root: Path) -> Path | None:
    """`<dataset>_masks` beside the dataset folder, if it exists."""
    cand = data_root.absolute().parent / f"{data_root.absolute().name}_masks"
    return cand if cand.is_dir() else None


def available(data_root: str | os.PathLike) -> str | None:
    """Why masks cannot be had for this dataset, or None when a source exists."""
    root = Path(data_root)
    if mask_folder(root) is not None:
        return None
    if not (root / MAP_FILE).exists():
        return f"no mask folder ({root.name}_masks beside the dataset) and no {MAP_FILE}"
    if find_figshare(root) is None:
        return f"{MAP_FILE} found, but not the figshare set (figshare-brain-tumor/ beside it, or TUMORLENS_FIGSHARE_DIR)"
    return None


def _one_mask(image_path: Path, mask_path: Path, mirrored: bool, pre: Preprocess) -> np.ndarray:
    gray = read_gray(image_path, draft=4 * pre.size)  # as data.decode_file: the same crop box
    with Image.open(image_path) as im:
        full_w, full_h = im.size
    g = gray - float(gray.min())
    box = map_box(head_box(g, pre), full_h / gray.shape[0])
    with Image.open(mask_path) as m:
        m = m.convert("L")
        if mirrored:
            m = m.transpose(Image.FLIP_LEFT_RIGHT)
        if m.size != (full_w, full_h):
            m = m.resize((full_w, full_h), Image.NEAREST)
        mask = (np.asarray(m) > 0).astype(np.float32)
    return np.clip(resize(crop_square(mask, box), pre.size), 0.0, 1.0)


def dataset_masks(ds: Dataset, pre: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """(masks (N, S, S) float32 in [0, 1], known (N,) bool) for the images of `ds`, cached.

    Raises TumorlensError when no mask source exists (`available` says why).
    """
    root = Path(ds.root)
    why = available(root)
    if why:
        raise TumorlensError(f"{root}: mask guidance needs tumour masks: {why}")
    folder = mask_folder(root)
    fig = None if folder else find_figshare(root)
    mapping = {} if folder else read_mapping(root)
    source = f"folder:{folder}" if folder else (root / MAP_FILE).read_text()
    key = hashlib.sha256(("\n".join(ds.sha256) + pre.key() + source).encode()).hexdigest()
    cp = cache_dir() / "masks" / f"{key[:32]}.npz"
    if cp.exists():
        try:
            with np.load(cp) as z:
                return z["masks"], z["known"]
        except Exception:  # noqa: BLE001 - rebuilt, never trusted
            log.warning("rebuilding damaged mask cache %s", cp)
    n, s = len(ds.entries), pre.size
    masks = np.zeros((n, s, s), np.float32)
    known = np.zeros(n, bool)
    for i, e in enumerate(ds.entries):
        try:
            if folder is not None:
                mp = (folder / e.path).with_suffix(".png")
                if mp.exists():
                    masks[i] = _one_mask(root / e.path, mp, False, pre)
                    known[i] = True
                elif e.label == "notumor":
                    known[i] = True
            elif e.label == "notumor":
                known[i] = True
            elif e.path in mapping:
                idx, mirrored = mapping[e.path]
                masks[i] = _one_mask(root / e.path, fig / "masks" / f"{idx}.png", mirrored, pre)
                known[i] = True
        except (TumorlensError, OSError) as err:
            log.warning("no mask for %s: %s", e.path, err)
    buf = io.BytesIO()
    np.savez_compressed(buf, masks=masks, known=known)
    try:
        atomic_write_bytes(cp, buf.getvalue(), fsync=False)
    except OSError as err:
        log.warning("cannot write mask cache %s: %s", cp, err)
    log.info("masks: %d of %d images (no-tumour slices count, with empty masks)", int(known.sum()), n)
    return masks, known


def training_masks(ds: Dataset, pre: Preprocess, seg_weight: float) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict]:
    """Masks for mask-guided training when the recipe asks for them and the dataset has them.

    Returns (masks or None, a note for the checkpoint: whether guidance was used and why not). A dataset
    without masks trains unguided (logged, and recorded in the checkpoint) rather than failing.
    """
    if seg_weight <= 0:
        return None, {"used": False, "reason": "seg_weight is 0"}
    why = available(ds.root)
    if why:
        log.info("training without mask guidance: %s", why)  # the caller reports it; the checkpoint records it
        return None, {"used": False, "reason": why}
    m, k = dataset_masks(ds, pre)
    n_t = int(sum(1 for i, e in enumerate(ds.entries) if k[i] and e.label != "notumor"))
    return (m, k), {"used": True, "seg_weight": seg_weight, "images_with_mask": int(k.sum()),
                    "tumour_masks": n_t, "source": "mask folder" if mask_folder(Path(ds.root)) else MAP_FILE}
