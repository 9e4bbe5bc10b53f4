"""Tests for the synthetic MRI phantoms: anatomy, lesion placement, determinism and the dataset writer."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tumorlens.config import CLASSES, Preprocess, TumorlensError
from tumorlens.data import load_dataset, preprocess_array, scan_dataset
from tumorlens.synthetic import (
    DUPLICATE_KINDS,
    make_arrays,
    make_dataset,
    make_phantom,
    make_slice,
    manifest_path,
    masks_root,
)


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square, with plain numpy shifts."""
    out = m.copy()
    h, w = m.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            src = m[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] |= src
    return out


def _phantoms(label: str, n: int, size: int = 256, seed: int = 7):
    return [make_phantom(label, np.random.default_rng([seed, i]), size) for i in range(n)]


def _read_manifest(out: Path) -> list[dict[str, str]]:
    with open(manifest_path(out), newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------- slices
@pytest.mark.parametrize("size", [256, 96])
@pytest.mark.parametrize("label", CLASSES)
def test_make_slice_returns_uint8_image_and_bool_mask_of_requested_size(label, size):
    img, mask = make_slice(label, np.random.default_rng(0), size)
    assert img.shape == (size, size) and img.dtype == np.uint8
    assert mask.shape == (size, size) and mask.dtype == np.bool_
    assert img.max() > 150 and img.min() < 20  # a bright skull ring on a dark background


def test_mask_is_empty_iff_notumor():
    for label in CLASSES:
        for p in _phantoms(label, 8):
            assert (p.mask.sum() == 0) == (label == "notumor"), label


def test_background_is_dark_and_head_is_bright():
    for label in CLASSES:
        for p in _phantoms(label, 3):
            assert p.image[~_dilate(p.head, 2)].mean() < 25
            assert p.image[p.skull].mean() > 2 * p.image[~_dilate(p.head, 2)].mean()


def test_pituitary_lesion_is_small_on_the_midline_in_the_lower_half_of_the_head():
    for p in _phantoms("pituitary", 12):
        S = p.image.shape[0]
        hy, hx = np.argwhere(p.head).mean(0)
        ly, lx = np.argwhere(p.mask).mean(0)
        rows = np.flatnonzero(p.head.any(1))
        height = rows[-1] - rows[0]
        assert abs(lx - hx) < 0.07 * S, "pituitary lesion off the midline"
        assert ly > hy + 0.15 * height, "pituitary lesion not in the lower part of the head"
        assert not (p.mask & p.skull).any()
        assert p.mask.sum() < 0.03 * p.head.sum()  # small


def test_meningioma_lesion_lies_against_the_inner_skull_surface():
    angles = []
    for p in _phantoms("meningioma", 12):
        assert not (p.mask & p.skull).any()
        assert (_dilate(p.mask, 2) & p.skull).sum() >= 5, "meningioma is not attached to the skull"
        hy, hx = np.argwhere(p.head).mean(0)
        ly, lx = np.argwhere(p.mask).mean(0)
        angles.append(np.arctan2(ly - hy, lx - hx))
    # attached at random angles, not always in one place
    assert np.ptp(np.cos(angles)) > 1.0 or np.ptp(np.sin(angles)) > 1.0


def test_glioma_lesion_is_inside_the_brain_away_from_the_skull():
    for p in _phantoms("glioma", 12):
        assert p.mask.any()
        assert not (p.mask & ~p.brain).any(), "glioma outside the parenchyma"
        assert not (_dilate(p.mask, 3) & p.skull).any(), "glioma touches the skull"


def test_lesions_have_class_typical_intensity():
    for p in _phantoms("glioma", 6) + _phantoms("meningioma", 6) + _phantoms("pituitary", 6):
        brain = p.image[p.brain & ~_dilate(p.mask, 3)].astype(float)
        les = p.image[p.mask].astype(float)
        if p.label == "glioma":  # bright enhancing rim and dark necrotic core
            assert np.percentile(les, 95) > np.median(brain)
            assert np.percentile(les, 5) < np.median(brain)
            assert les.std() > brain.std()
        else:  # bright and fairly homogeneous
            assert np.median(les) > np.percentile(brain, 75)


def test_lesion_sizes_vary():
    for label in ("glioma", "meningioma", "pituitary"):
        areas = [p.mask.sum() for p in _phantoms(label, 10)]
        assert max(areas) > 1.5 * min(areas), label


def test_unknown_class_is_a_user_error():
    with pytest.raises(TumorlensError):
        make_slice("astrocytoma", np.random.default_rng(0))


def test_mean_intensity_alone_does_not_separate_the_classes():
    """Best 1-D rule on the image mean (8 quantile bins, majority class per bin, fit on one half)."""
    X, y, _ = make_arrays(40, size=64, seed=11)
    for feats in (X.mean((1, 2)), np.array([preprocess_array(x, Preprocess())[0].mean() for x in X])):
        idx = np.random.default_rng(0).permutation(len(y))
        tr, te = idx[: len(y) // 2], idx[len(y) // 2:]
        edges = np.quantile(feats[tr], np.linspace(0, 1, 9)[1:-1])
        bins_tr, bins_te = np.digitize(feats[tr], edges), np.digitize(feats[te], edges)
        rule = {b: np.bincount(y[tr][bins_tr == b], minlength=4).argmax() for b in range(8)}
        acc = np.mean([rule[b] == t for b, t in zip(bins_te, y[te])])
        assert acc < 0.6, f"image mean separates the classes ({acc:.0%})"


# ---------------------------------------------------------------------------------------- arrays
def test_make_arrays_shapes_dtypes_and_range():
    X, y, M = make_arrays(3, size=64, seed=0)
    assert X.shape == (12, 64, 64) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert y.dtype == np.int64 and np.array_equal(np.bincount(y), [3, 3, 3, 3])
    assert M.shape == X.shape and M.dtype == np.bool_
    has_lesion = M.any((1, 2))
    assert np.array_equal(has_lesion, y != CLASSES.index("notumor"))


def test_same_seed_gives_identical_arrays_and_different_seed_differs():
    a = make_arrays(2, size=48, seed=5)
    b = make_arrays(2, size=48, seed=5)
    c = make_arrays(2, size=48, seed=6)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    img1, m1 = make_slice("glioma", np.random.default_rng(3), 128)
    img2, m2 = make_slice("glioma", np.random.default_rng(3), 128)
    assert np.array_equal(img1, img2) and np.array_equal(m1, m2)


# --------------------------------------------------------------------------------------- dataset
def test_make_dataset_flat_layout_with_masks_and_manifest_beside_the_root(tmp_path):
    out = make_dataset(tmp_path / "ds", n_per_class=3, size=96, seed=1)
    assert out == tmp_path / "ds"
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)  # nothing but class folders inside
    for label in CLASSES:
        assert sorted(p.name for p in (out / label).iterdir()) == [f"{label}_{i}.png" for i in range(3)]
    assert masks_root(out) == tmp_path / "ds_masks" and manifest_path(out) == tmp_path / "ds_manifest.csv"
    rows = _read_manifest(out)
    assert list(rows[0]) == ["path", "label", "mask_path", "duplicate_of", "kind"]
    assert len(rows) == 12 and {r["kind"] for r in rows} == {"original"}
    for r in rows:
        img = np.asarray(Image.open(out / r["path"]))
        mask = np.asarray(Image.open(tmp_path / r["mask_path"])) > 0
        assert img.shape == mask.shape == (96, 96)
        assert r["path"].split("/")[0] == r["label"]
        assert mask.any() == (r["label"] != "notumor")
    entries = scan_dataset(out)
    assert len(entries) == 12 and {e.split for e in entries} == {None}


def test_make_dataset_split_layout_is_80_20(tmp_path):
    out = make_dataset(tmp_path / "ds", n_per_class=10, size=64, seed=1, split=True)
    assert sorted(p.name for p in out.iterdir()) == ["Testing", "Training"]
    for label in CLASSES:
        assert len(list((out / "Training" / label).iterdir())) == 8
        assert len(list((out / "Testing" / label).iterdir())) == 2
        assert (masks_root(out) / "Testing" / label / f"{label}_9.png").is_file()
    entries = scan_dataset(out)
    assert sum(e.split == "train" for e in entries) == 32 and sum(e.split == "test" for e in entries) == 8


def test_make_dataset_is_byte_identical_for_the_same_seed(tmp_path):
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for d in ("a", "b", "c"):
        make_dataset(tmp_path / d / "ds", n_per_class=2, size=64, seed=9 if d != "c" else 10, split=True,
                     duplicates=4)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a != c
    same_names = a.keys() & c.keys()
    assert all(a[k] != c[k] for k in same_names if k.startswith("ds/") and "/notumor_0" in k)


def test_make_arrays_sees_the_same_slices_as_make_dataset(tmp_path):
    out = make_dataset(tmp_path / "ds", n_per_class=1, size=256, seed=4)
    X, y, M = make_arrays(1, size=256, seed=4)
    for k, label in enumerate(CLASSES):
        img = np.asarray(Image.open(out / label / f"{label}_0.png"))
        assert np.array_equal(img, np.round(X[k] * 255).astype(np.uint8))


def test_planted_duplicates_cover_every_kind_and_cross_the_split(tmp_path):
    out = make_dataset(tmp_path / "ds", n_per_class=6, size=96, seed=2, split=True, duplicates=8)
    rows = _read_manifest(out)
    dups = [r for r in rows if r["kind"] != "original"]
    assert len(rows) == 24 + 8 and len(dups) == 8
    assert {r["kind"] for r in dups} == set(DUPLICATE_KINDS)
    by_path = {r["path"]: r for r in rows}
    crossed = 0
    for r in dups:
        src = by_path[r["duplicate_of"]]
        assert src["kind"] == "original" and src["label"] == r["label"]
        assert r["path"].split("/")[1] == r["label"]  # same class folder
        crossed += r["path"].split("/")[0] != src["path"].split("/")[0]
        a = np.asarray(Image.open(out / src["path"])).astype(float)
        b = np.asarray(Image.open(out / r["path"])).astype(float)
        mask = np.asarray(Image.open(tmp_path / r["mask_path"])) > 0
        assert mask.shape == b.shape
        if r["kind"] == "reencoded":
            assert r["path"].endswith(".jpg") and np.abs(a - b).mean() < 6
        elif r["kind"] == "resized":
            assert b.shape != a.shape
        elif r["kind"] == "mirrored":
            assert np.array_equal(a[:, ::-1], b)
        else:
            assert not np.array_equal(a, b) and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert crossed >= 1, "no duplicate was planted across the Training/Testing split"


def test_generated_dataset_loads_with_the_dataset_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "cache"))
    out = make_dataset(tmp_path / "ds", n_per_class=3, size=96, seed=3, split=True, duplicates=4, fmt="jpg")
    ds = load_dataset(out, Preprocess(size=32), workers=1)
    assert len(ds.entries) == 16 and not ds.skipped
    labels = {r["path"]: r["label"] for r in _read_manifest(out)}
    assert {e.path: e.label for e in ds.entries} == labels


def test_make_dataset_refuses_a_non_empty_folder_and_bad_arguments(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "old.txt").write_text("x")
    with pytest.raises(TumorlensError):
        make_dataset(tmp_path / "ds", n_per_class=1, size=64)
    with pytest.raises(TumorlensError):
        make_dataset(tmp_path / "new", n_per_class=1, size=64, fmt="gif")
    with pytest.raises(TumorlensError):
        make_dataset(tmp_path / "new", n_per_class=0, size=64)
    assert not (tmp_path / "new").exists()
