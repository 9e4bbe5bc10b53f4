"""Reading class-folder datasets: class names, formats, bad files, preprocessing and the cache."""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tumorlens.config import Preprocess, TumorlensError
from tumorlens.data import (canonical_class, head_box, load_dataset, preprocess_array, read_gray,
                            scan_dataset)
from tumorlens.synthetic import make_slice


def _slice(label="glioma", seed=0, size=128):
    return make_slice(label, np.random.default_rng(seed), size)[0]


def _write_ds(root: Path, per_class=3, classes=("glioma", "meningioma", "no_tumor", "Pituitary Tumor")):
    for ci, c in enumerate(classes):
        d = root / c
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_slice("notumor" if "tumor" in c.lower() and "pit" not in c.lower() else "glioma",
                                   seed=ci * 10 + i)).save(d / f"{i}.png")
    return root


@pytest.mark.parametrize("name,expected", [("glioma", "glioma"), ("Glioma_Tumor", "glioma"),
                                           ("no_tumor", "notumor"), ("No Tumor", "notumor"),
                                           ("notumor", "notumor"), ("pituitary_tumor", "pituitary"),
                                           ("MENINGIOMA", "meningioma"), ("cat", None)])
def test_canonical_class_accepts_usual_spellings(name, expected):
    assert canonical_class(name) == expected


def test_scan_finds_class_folders_with_and_without_split_folders(tmp_path):
    _write_ds(tmp_path / "flat")
    e = scan_dataset(tmp_path / "flat")
    assert {x.label for x in e} == {"glioma", "meningioma", "notumor", "pituitary"} and len(e) == 12
    assert all(x.split is None for x in e)
    _write_ds(tmp_path / "s" / "Training")
    _write_ds(tmp_path / "s" / "Testing", per_class=1)
    e = scan_dataset(tmp_path / "s")
    assert sum(x.split == "train" for x in e) == 12 and sum(x.split == "test" for x in e) == 4


def test_unknown_class_folder_is_an_error_naming_it(tmp_path):
    _write_ds(tmp_path)
    (tmp_path / "astrocytoma").mkdir()
    Image.fromarray(_slice()).save(tmp_path / "astrocytoma" / "a.png")
    with pytest.raises(TumorlensError, match="astrocytoma"):
        scan_dataset(tmp_path)


def test_missing_dataset_folder_is_an_error(tmp_path):
    with pytest.raises(TumorlensError, match="not found"):
        scan_dataset(tmp_path / "nope")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1"])
@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff", ".jpg"])
def test_every_format_and_mode_reads_as_2d_grayscale(tmp_path, mode, ext):
    g = _slice(size=64)
    if mode == "I;16":
        if ext in (".jpg", ".bmp"):
            pytest.skip("format has no 16-bit mode")
        im = Image.fromarray(g.astype(np.uint16) * 200)
    elif mode == "1" and ext == ".jpg":
        pytest.skip("JPEG has no 1-bit mode")
    elif mode in ("RGBA", "P") and ext in (".jpg",):
        pytest.skip("JPEG has no alpha or palette")
    else:
        im = Image.fromarray(g).convert(mode)
    p = tmp_path / f"x{ext}"
    im.save(p)
    a = read_gray(p)
    assert a.ndim == 2 and a.shape == (64, 64) and a.dtype == np.float32
    x, _ = preprocess_array(a, Preprocess(size=32))
    assert x.shape == (32, 32) and x.min() >= 0 and x.max() <= 1


def test_16bit_png_keeps_its_dynamic_range(tmp_path):
    g = _slice(size=64).astype(np.uint16) * 257
    Image.fromarray(g).save(tmp_path / "a.png")
    a = read_gray(tmp_path / "a.png")
    assert a.max() > 255
    x8, _ = preprocess_array(_slice(size=64).astype(np.float32), Preprocess())
    x16, _ = preprocess_array(a, Preprocess())
    assert np.abs(x8 - x16).max() < 0.02  # scaling-invariant preprocessing


def test_rgba_transparent_pixels_become_background(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = 255  # white but fully transparent
    rgba[8:24, 8:24, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = read_gray(tmp_path / "a.png")
    assert a[0, 0] == 0 and a[16, 16] > 250


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.png"
    Image.fromarray(_slice()).save(good)
    data = good.read_bytes()
    files = {"empty": tmp_path / "empty.png", "truncated": tmp_path / "trunc.png",
             "text": tmp_path / "notes.jpg", "tiny": tmp_path / "tiny.png", "bomb": tmp_path / "bomb.png"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"].write_text("this is not an image\n")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(files["tiny"])
    # a PNG whose header claims 100000 x 100000 pixels
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    files["bomb"].write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
                              + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", len(idat) - 4) + idat
                              + struct.pack(">I", zlib.crc32(idat)))
    return files


@pytest.mark.parametrize("kind,msg", [("empty", "empty file"), ("truncated", "truncated"),
                                      ("text", "not an image"), ("tiny", "only 4x4"), ("bomb", "pixels")])
def test_bad_file_gives_one_line_error_naming_file_and_problem(tmp_path, kind, msg):
    p = _bad_files(tmp_path)[kind]
    with pytest.raises(TumorlensError) as e:
        read_gray(p)
    assert str(p) in str(e.value) and msg in str(e.value) and "\n" not in str(e.value)


def test_bad_files_are_skipped_and_counted_while_the_rest_load(tmp_path):
    root = _write_ds(tmp_path / "ds")
    for p in _bad_files(tmp_path).values():
        os.replace(p, root / "glioma" / p.name)
    ds = load_dataset(root, workers=1)
    assert len(ds.entries) == 12
    assert len(ds.skipped) == 5
    assert all(str(root) in reason for _, reason in ds.skipped)


def test_class_with_no_readable_image_is_an_error(tmp_path):
    root = _write_ds(tmp_path / "ds")
    for p in (root / "meningioma").iterdir():
        p.write_bytes(b"")
    with pytest.raises(TumorlensError, match="meningioma"):
        load_dataset(root, workers=1)


def test_head_box_ignores_black_border_and_aspect(tmp_path):
    g = np.zeros((300, 500), np.float32)
    g[50:250, 150:350] = _slice(size=200).astype(np.float32)
    top, left, side = head_box(g, Preprocess())
    assert 140 <= left + side / 2 <= 360 and side < 260  # centred on the head, not the whole frame
    x1, _ = preprocess_array(g, Preprocess())
    x2, _ = preprocess_array(_slice(size=200).astype(np.float32), Preprocess())
    assert np.corrcoef(x1.ravel(), x2.ravel())[0, 1] > 0.95  # a padded copy looks like the original


def test_blank_image_preprocesses_to_zeros_without_error():
    x, box = preprocess_array(np.full((50, 50), 7.0, np.float32), Preprocess())
    assert x.shape == (64, 64) and float(x.max()) == 0.0


def test_second_load_uses_cache_and_decodes_nothing(tmp_path, monkeypatch):
    root = _write_ds(tmp_path / "ds")
    a = load_dataset(root, workers=1)
    import tumorlens.data as data

    def boom(*args, **kw):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "decode_file", boom)
    b = load_dataset(root, workers=1)
    assert np.array_equal(a.images, b.images) and a.sha256 == b.sha256


def test_cache_is_keyed_by_preprocessing_settings(tmp_path):
    root = _write_ds(tmp_path / "ds")
    a = load_dataset(root, Preprocess(size=32), workers=1)
    b = load_dataset(root, Preprocess(size=48), workers=1)
    assert a.images.shape[1:] == (32, 32) and b.images.shape[1:] == (48, 48)


def test_cache_dir_follows_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "c"))
    load_dataset(_write_ds(tmp_path / "ds"), workers=1)
    assert any((tmp_path / "c").rglob("*.npz"))


def test_parallel_and_serial_loading_agree(tmp_path):
    root = _write_ds(tmp_path / "ds", per_class=70)  # >= 256 files: takes the process pool
    a = load_dataset(root, workers=2, use_cache=False)
    b = load_dataset(root, workers=1, use_cache=False)
    assert np.array_equal(a.images, b.images)


# ------------------------------------------------------------------------------- head equalisation
def test_equalize_head_gives_hand_derived_mean_ranks_and_leaves_the_background():
    from tumorlens.data import equalize_head

    x = np.array([[0.0, 0.05, 0.3, 0.9], [0.3, 0.6, 0.08, 0.2]], dtype=np.float32)
    # head (> 0.08): 0.2 0.3 0.3 0.6 0.9 -> ranks 0, 1.5, 1.5, 3, 4 of n = 5; value 0.08 + 0.92 * (r + 0.5) / 5
    want = np.array([[0.0, 0.05, 0.08 + 0.92 * 2 / 5, 0.08 + 0.92 * 4.5 / 5],
                     [0.08 + 0.92 * 2 / 5, 0.08 + 0.92 * 3.5 / 5, 0.08, 0.08 + 0.92 * 0.5 / 5]], dtype=np.float32)
    np.testing.assert_allclose(equalize_head(x), want, atol=1e-6)
    blank = np.zeros((8, 8), dtype=np.float32)
    assert np.array_equal(equalize_head(blank), blank)


def test_equalize_head_undoes_an_increasing_grey_level_curve_and_is_idempotent():
    from tumorlens.data import equalize_head

    x = preprocess_array(make_slice("glioma", np.random.default_rng(3), 128)[0].astype(np.float32), Preprocess())[0]
    head = x > 0.08
    curved = np.where(head, 0.08 + 0.92 * (np.clip(x - 0.08, 0, None) / 0.92) ** 2.2, x).astype(np.float32)
    e = equalize_head(x)
    assert np.array_equal(equalize_head(curved) > 0.08, head)
    # a float curve can merge or split a few near-equal values; the ranks move by at most that
    assert np.abs(equalize_head(curved) - e).max() < 2e-3
    assert np.array_equal(equalize_head(e), e)


def test_equalize_preprocessing_is_applied_and_keyed_only_when_on():
    plain, eq = Preprocess(), Preprocess(equalize=True)
    g = make_slice("meningioma", np.random.default_rng(4), 128)[0].astype(np.float32)
    from tumorlens.data import equalize_head

    a, b = preprocess_array(g, plain)[0], preprocess_array(g, eq)[0]
    assert np.array_equal(b, equalize_head(a))
    assert eq.key() != plain.key()
    # caches made before the setting existed keep their key: the default's key hashes the old fields only
    import dataclasses, hashlib, json

    old = {k: v for k, v in dataclasses.asdict(plain).items() if k != "equalize"}
    assert plain.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]


def test_a_jpeg_with_an_exif_orientation_is_read_as_a_viewer_shows_it(tmp_path):
    a = np.zeros((40, 64), dtype=np.uint8)
    a[5:15, 5:30] = 255  # a bright bar near the top-left corner: any turn or flip moves it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "turned.jpg", quality=100, exif=exif)
    Image.fromarray(a).save(tmp_path / "plain.jpg", quality=100)
    turned, plain = read_gray(tmp_path / "turned.jpg"), read_gray(tmp_path / "plain.jpg")
    assert turned.shape == (64, 40) and plain.shape == (40, 64)
    np.testing.assert_array_equal(turned, np.rot90(plain, k=-1))  # 90 degrees clockwise
