"""Readers: every format round-trips, training's decode is reproduced exactly, bad inputs give clear errors."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predict_helpers import dicom_bytes, encode, nifti_bytes, phantom, png_bomb
from tumorlens.config import TumorlensError
from tumorlens.data import read_gray
from tumorlens.readers import MAX_AUTO_SLICES, auto_slices, read_frames

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")


# ------------------------------------------------------------------------------------ 2-D images
@pytest.mark.parametrize("fmt,ext", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("TIFF", ".tif")])
def test_images_match_training_decode_for_paths_and_bytes(tmp_path, fmt, ext):
    img = phantom(size=512)
    p = tmp_path / f"a{ext}"
    p.write_bytes(encode(Image.fromarray(img).convert("RGB") if fmt == "JPEG" else img, fmt))
    for draft in (None, 256):
        want = read_gray(p, draft=draft)
        (fr,) = read_frames(p, draft=draft)
        assert np.array_equal(fr.gray, want) and fr.where == {}
        (fb,) = read_frames(p.read_bytes(), name=p.name, draft=draft)
        assert np.array_equal(fb.gray, want)
    if fmt == "JPEG":  # draft decoding really happened, exactly as in training
        assert read_frames(p, draft=256)[0].gray.shape == (256, 256)
        assert read_frames(p)[0].gray.shape == (512, 512)


def test_16bit_rgba_and_palette_images_match_read_gray(tmp_path):
    a16 = (phantom().astype(np.uint16) * 200)
    p = tmp_path / "a16.png"
    Image.fromarray(a16).save(p)
    assert np.array_equal(read_frames(p)[0].gray, read_gray(p))
    rgba = Image.fromarray(phantom()).convert("RGBA")
    p2 = tmp_path / "rgba.png"
    rgba.save(p2)
    assert np.array_equal(read_frames(p2)[0].gray, read_gray(p2))
    p3 = tmp_path / "pal.png"
    Image.fromarray(phantom()).convert("P").save(p3)
    assert np.array_equal(read_frames(p3)[0].gray, read_gray(p3))


def test_colour_is_measured_on_the_rgb_source(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    grey_rgb = np.repeat(phantom(size=64)[..., None], 3, axis=2)
    for arr, fmt in ((colour, "PNG"), (colour, "JPEG")):
        (fr,) = read_frames(encode(arr, fmt), name=f"c.{fmt.lower()}", draft=16)
        assert fr.info["colour"] and fr.info["colour_fraction"] > 0.5 and fr.info["colourfulness"] > 20
    (fr,) = read_frames(encode(grey_rgb, "JPEG", quality=90), name="g.jpg", draft=16)
    assert fr.info["colour_fraction"] < 0.02
    (fr,) = read_frames(encode(phantom(), "PNG"), name="g.png")
    assert not fr.info["colour"] and fr.info["colour_fraction"] == 0.0


@pytest.mark.parametrize("data,msg", [
    (b"", r"empty file \(0 bytes\)"),
    (b"this is not an image at all" * 20, "not an image file"),
    (png_bomb(), "too large"),
])
def test_bad_bytes_give_named_errors(data, msg):
    with pytest.raises(TumorlensError, match=msg) as e:
        read_frames(data, name="upload.png")
    assert str(e.value).startswith("upload.png: ")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, about the broken file
def test_a_tiff_pillow_cannot_decode_is_named_as_tiff_not_as_a_non_image(tmp_path):
    # scikit-image's multipage_rgb.tif (planar 64-bit float RGB) was reported "not an image file"
    tiff = b"II*\x00" + bytes(range(8, 200))
    for src in (tiff, tmp_path / "odd.tif"):
        if isinstance(src, Path):
            src.write_bytes(tiff)
        with pytest.raises(TumorlensError, match="a TIFF file that Pillow cannot decode") as e:
            read_frames(src, name="odd.tif")
        assert str(e.value).startswith("odd.tif: ") and "\n" not in str(e.value)
    with pytest.raises(TumorlensError, match="not an image file"):  # no known leading bytes: not an image
        read_frames(b"MZ" + bytes(300), name="odd.tif")


def test_truncated_and_tiny_images(tmp_path):
    full = encode(phantom(), "PNG")
    with pytest.raises(TumorlensError, match="corrupt or truncated"):
        read_frames(full[: len(full) // 2], name="t.png")
    with pytest.raises(TumorlensError, match="only 4x4 pixels"):
        read_frames(encode(np.zeros((4, 4), np.uint8), "PNG"), name="s.png")
    p = tmp_path / "zero.jpg"
    p.write_bytes(b"")
    with pytest.raises(TumorlensError, match=f"{p}: empty file"):
        read_frames(p)
    with pytest.raises(TumorlensError, match="cannot read"):
        read_frames(tmp_path / "missing.png")


# ----------------------------------------------------------------------------------------- DICOM
def test_dicom_rescale_and_window_follow_the_standard():
    a = np.array(phantom(size=64), dtype=np.uint16) * 8  # 0..2040
    (fr,) = read_frames(dicom_bytes(a, slope=2.0, intercept=-100.0, wc=1000.0, ww=2001.0), name="w.dcm")
    v = a.astype(np.float64) * 2.0 - 100.0
    want = np.clip((v - 999.5) / 2000.0 + 0.5, 0, 1) * 255  # PS3.3 C.11.2.1.2, LINEAR
    assert np.allclose(fr.gray, want, atol=1e-3)
    assert fr.info["window"] == "window" and fr.info["modality"] == "MR"


def test_dicom_without_window_uses_robust_percentiles_and_monochrome1_is_inverted():
    a = np.array(phantom(size=64), dtype=np.uint16) * 100
    a[0, 0] = 65000  # one hot pixel must not squash the range
    (m2,) = read_frames(dicom_bytes(a), name="m2.dcm")
    (m1,) = read_frames(dicom_bytes(a, photometric="MONOCHROME1"), name="m1.dcm")
    assert m2.info["window"] == "percentile"
    lo, hi = np.percentile(a.astype(np.float32), [0.5, 99.5])
    assert np.allclose(m2.gray, np.clip((a - lo) / (hi - lo), 0, 1) * 255, atol=1e-2)
    assert np.allclose(m1.gray, 255.0 - m2.gray)


def test_dicom_multiframe_gives_one_frame_each_and_no_preamble_dcm_is_read():
    stack = np.stack([phantom(i=i, size=64) for i in range(3)]).astype(np.uint16)
    frames = read_frames(dicom_bytes(stack, wc=128.0, ww=256.0), name="multi.dcm")
    assert [f.where for f in frames] == [{"frame": 0}, {"frame": 1}, {"frame": 2}]
    for f, s in zip(frames, stack):
        assert np.allclose(f.gray, s, atol=1e-3)  # centre 128, width 256: the identity on 8-bit values
    raw = dicom_bytes(stack[0], preamble=False)
    assert raw[128:132] != b"DICM"
    assert len(read_frames(raw, name="nopre.dcm")) == 1


def _with_spacing(dcm: bytes, source: str, value) -> bytes:
    """`dcm` with a pixel spacing stored where `source` says: 'PixelSpacing', 'ImagerPixelSpacing', or 'shared'
    (the SharedFunctionalGroupsSequence of an enhanced multi-frame object)."""
    import io

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(dcm))
    if source == "shared":
        measures = Dataset()
        measures.PixelSpacing = value
        group = Dataset()
        group.PixelMeasuresSequence = Sequence([measures])
        ds.SharedFunctionalGroupsSequence = Sequence([group])
    else:
        setattr(ds, source, value)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _nifti_slice(img: np.ndarray, zooms: tuple[float, float]):
    """The reader's frame of a one-slice NIfTI volume showing `img` with in-plane voxel size `zooms` (x, y)."""
    vol = img.astype(np.float32)[::-1, ::-1].T[:, :, None]  # inverse of the reader's display transform
    (fr,) = read_frames(nifti_bytes(vol, affine=np.diag([zooms[0], zooms[1], 1.0, 1.0])), name="s.nii", slice=0)
    return fr


@pytest.mark.parametrize("source", ["PixelSpacing", "ImagerPixelSpacing", "shared"])
def test_dicom_non_square_pixels_are_made_square_like_the_same_nifti_slice(source):
    """A DICOM with PixelSpacing 0.5\\1.0 (rows 0.5 mm apart, columns 1.0 mm) was shown and classified squashed
    to half its width; it now reads as the same slice stored as NIfTI with voxel size (2, 1) does."""
    img = phantom(size=64)
    stack = np.stack([img, phantom(i=1, size=64)]).astype(np.uint16)
    frames = read_frames(_with_spacing(dicom_bytes(stack, wc=128.0, ww=256.0), source, [0.5, 1.0]), name="w.dcm")
    want = _nifti_slice(img, (2.0, 1.0)).gray
    assert want.shape == (64, 128)
    assert [f.gray.shape for f in frames] == [(64, 128), (64, 128)]  # every frame, at the coarser axis' stretch
    assert np.allclose(frames[0].gray, want, atol=1e-3)  # centre 128, width 256: the identity on 8-bit values
    assert frames[0].info["pixel_spacing"] == [0.5, 1.0]
    # tall pixels (rows 1.0 mm apart, columns 0.5 mm) stretch the rows instead, as NIfTI's (1, 2) does
    (tall,) = read_frames(_with_spacing(dicom_bytes(img.astype(np.uint16), wc=128.0, ww=256.0), source,
                                        [1.0, 0.5]), name="t.dcm")
    assert tall.gray.shape == (128, 64) and np.allclose(tall.gray, _nifti_slice(img, (1.0, 2.0)).gray, atol=1e-3)


@pytest.mark.parametrize("value,recorded", [
    (None, None), ([0.7, 0.7], [0.7, 0.7]), ([1.0, 1.005], [1.0, 1.005]),  # square within 1 %
    ([0.0, 1.0], None), ([-0.5, 1.0], None), ([1.0], None), (b"abc\\1.0", None), (b"nan\\1.0", None),
])
def test_dicom_square_or_unusable_pixel_spacing_leaves_the_pixels_exactly_as_they_were(value, recorded, caplog):
    """Square pixels (or a missing, zero, negative, one-valued or non-numeric spacing, which says nothing) give
    the very pixels of a DICOM without PixelSpacing, and an unusable value is logged, never guessed from."""
    a = np.array(phantom(size=64), dtype=np.uint16) * 8
    plain = dicom_bytes(a)
    (ref,) = read_frames(plain, name="ref.dcm")
    if isinstance(value, bytes):  # pydicom will not write a malformed decimal string: patch one in
        dcm = _with_spacing(plain, "PixelSpacing", "9.9\\1.0").replace(b"9.9\\1.0", value)
    else:
        dcm = plain if value is None else _with_spacing(plain, "PixelSpacing", value)
    with caplog.at_level("WARNING", logger="tumorlens"):
        (fr,) = read_frames(dcm, name="s.dcm")
    assert fr.gray.shape == ref.gray.shape and np.array_equal(fr.gray, ref.gray)
    assert fr.info["pixel_spacing"] == recorded
    unusable = value is not None and recorded is None
    assert any("s.dcm: PixelSpacing" in r.getMessage() for r in caplog.records) == unusable


def test_an_unusable_pixel_spacing_falls_back_to_imager_pixel_spacing():
    a = np.array(phantom(size=64), dtype=np.uint16)
    dcm = _with_spacing(_with_spacing(dicom_bytes(a), "PixelSpacing", [0.0, 0.0]), "ImagerPixelSpacing", [1.0, 0.5])
    (fr,) = read_frames(dcm, name="f.dcm")
    assert fr.gray.shape == (128, 64) and fr.info["pixel_spacing"] == [1.0, 0.5]
    assert fr.info["pixel_spacing_from"] == "ImagerPixelSpacing"


def test_bundled_pydicom_files_decode_including_compressed():
    from pydicom.data import get_testdata_file

    ref = read_frames(get_testdata_file("MR_small.dcm"))[0].gray
    for fn in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        p = get_testdata_file(fn)
        try:
            (fr,) = read_frames(p)
        except TumorlensError as e:  # a decoder plugin is missing here: the error must name the syntax
            assert "transfer syntax" in str(e)
            continue
        assert np.allclose(fr.gray, ref, atol=1e-3), fn
    ct = read_frames(get_testdata_file("CT_small.dcm"))[0]
    assert ct.info["modality"] == "CT"
    us = read_frames(get_testdata_file("examples_ybr_color.dcm"))
    assert len(us) == 30 and us[0].info["modality"] == "US" and us[0].info["colour"]


def test_bad_dicoms_give_named_errors():
    from pydicom.data import get_testdata_file

    a = np.array(phantom(size=64), dtype=np.uint16)
    with pytest.raises(TumorlensError, match="nopix.dcm: DICOM file has no pixel data"):
        read_frames(dicom_bytes(a, pixels=False), name="nopix.dcm")
    full = dicom_bytes(a)
    with pytest.raises(TumorlensError, match="cut.dcm: corrupt or truncated DICOM"):
        read_frames(full[:-3000], name="cut.dcm")
    with pytest.raises(TumorlensError, match="MR_truncated.dcm: corrupt or truncated"):
        read_frames(get_testdata_file("MR_truncated.dcm"))
    with pytest.raises(TumorlensError, match="transfer syntax JPEG Extended"):
        read_frames(get_testdata_file("JPEG-lossy.dcm"))  # 12-bit JPEG: no PyPI decoder installed
    with pytest.raises(TumorlensError, match="no pixel data"):
        read_frames(get_testdata_file("rtplan.dcm"))


@pytest.mark.parametrize("data", [b"Patient notes: plain text, not a scan.\n" * 20, bytes(300), bytes(range(256)) * 3],
                         ids=["text", "zeros", "all-bytes"])
def test_a_dcm_file_that_holds_no_dicom_is_called_not_a_dicom_file(data):
    """A text file named x.dcm was reported as "DICOM file has no pixel data": a forced read takes it for one
    element of an unknown tag."""
    with pytest.raises(TumorlensError, match=r"^x\.dcm: not a DICOM file \(no DICOM header") as e:
        read_frames(data, name="x.dcm")
    assert "\n" not in str(e.value)
    # a real DICOM without its preamble is still read, and one without pixels still says so
    a = np.array(phantom(size=64), dtype=np.uint16)
    assert len(read_frames(dicom_bytes(a, preamble=False), name="np.dcm")) == 1
    with pytest.raises(TumorlensError, match="np.dcm: DICOM file has no pixel data"):
        read_frames(dicom_bytes(a, pixels=False, preamble=False), name="np.dcm")


# ---------------------------------------------------------------------------------- pixel limit
def test_the_pixel_limit_is_4096_squared_for_images_and_dicom():
    """60 M pixels let a 474 KB 7700x7700 16-bit RGBA PNG take 6 s and 2 GB; MRI slices are far smaller."""
    from tumorlens.data import MAX_PIXELS

    assert MAX_PIXELS == 4096 * 4096
    with pytest.raises(TumorlensError, match=r"^big\.png: image claims 4097x4096 pixels, over the 16,777,216 limit \(4096 x 4096\)"):
        read_frames(png_bomb(4097, 4096), name="big.png")
    with pytest.raises(TumorlensError) as e:  # at the limit the size passes; the missing pixel data fails
        read_frames(png_bomb(4096, 4096), name="edge.png")
    assert "over the" not in str(e.value)
    wide = np.zeros((2, 8, 4100), np.uint16)  # 8 x 4100 passes; the header is rewritten to claim 4100 x 4100
    with pytest.raises(TumorlensError, match="4100x4100 pixels, over the limit"):
        read_frames(_with_rows(dicom_bytes(wide), 4100), name="big.dcm")


def _with_rows(dcm: bytes, rows: int) -> bytes:
    import io

    ds = pydicom.dcmread(io.BytesIO(dcm))
    ds.Rows = rows
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_a_corrupt_jpeg2000_dicom_is_one_line_that_allows_for_corrupt_data_and_pydicom_stays_quiet(caplog):
    """Garbage over the start of the JPEG 2000 codestream: every decoder plugin fails, pydicom logged each
    failure with a traceback (~40 lines on stderr), and the error blamed a missing decoder."""
    import logging

    from pydicom.data import get_testdata_file

    raw = Path(get_testdata_file("MR_small_jp2klossless.dcm")).read_bytes()
    pixels = bytes(pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm")).PixelData)
    start = raw.index(pixels[:64]) + 16  # past the basic offset table and the fragment's item header
    bad = bytearray(raw)
    bad[start:start + 200] = bytes((7 * k + 3) % 256 for k in range(200))
    pd_log = logging.getLogger("pydicom")
    level = pd_log.level
    with caplog.at_level(logging.DEBUG), pytest.raises(TumorlensError) as e:
        read_frames(bytes(bad), name="j2k.dcm")
    msg = str(e.value)
    assert msg.startswith("j2k.dcm: cannot decode its compressed pixel data (transfer syntax JPEG 2000")
    assert "corrupt data or no installed decoder" in msg and "\n" not in msg
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]
    assert pd_log.level == level  # restored after the decode


# ----------------------------------------------------------------------------------------- NIfTI
def _volume(n: int = 20, size: int = 64) -> np.ndarray:
    """An (X, Y, Z) RAS volume whose axial slice k shows phantom k (displayed anterior-up)."""
    vol = np.zeros((size, size, n), np.float32)
    for k in range(n):
        img = phantom(i=k, size=size).astype(np.float32) if 3 <= k < n - 3 else np.zeros((size, size))
        vol[:, :, k] = img[::-1, ::-1].T  # inverse of the reader's display transform
    return vol


def test_nifti_axial_slices_reorientation_and_selection(tmp_path):
    vol = _volume()
    p = tmp_path / "v.nii.gz"
    p.write_bytes(nifti_bytes(vol, gz=True))
    frames = read_frames(p)
    ks = [f.where["slice"] for f in frames]
    assert ks == auto_slices(vol) and len(ks) <= MAX_AUTO_SLICES
    assert min(ks) > 3 and max(ks) < 16  # middle 60 % of the 14 head slices
    for f in frames:
        assert np.array_equal(f.gray, phantom(i=f.where["slice"], size=64).astype(np.float32))
    # the same volume stored flipped left-right and upside down (LPI) reads back identically
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])
    flip[0, 3], flip[2, 3] = 63.0, 19.0
    frames2 = read_frames(nifti_bytes(vol[::-1, :, ::-1], affine=flip), name="lpi.nii")
    assert [f.where for f in frames2] == [f.where for f in frames]
    assert all(np.array_equal(a.gray, b.gray) for a, b in zip(frames, frames2))
    (one,) = read_frames(p, slice=7)
    assert one.where == {"slice": 7} and np.array_equal(one.gray, phantom(i=7, size=64).astype(np.float32))
    with pytest.raises(TumorlensError, match="slice 40 is out of range"):
        read_frames(p, slice=40)


def test_nifti_anisotropic_pixels_are_made_square():
    aff = np.diag([2.0, 1.0, 1.0, 1.0])
    vol = np.random.default_rng(0).random((32, 64, 5)).astype(np.float32)
    (fr,) = read_frames(nifti_bytes(vol, affine=aff), name="a.nii", slice=2)
    assert fr.gray.shape == (64, 64)


def test_complex_nifti_is_an_error_not_a_warning_and_an_answer():
    """nibabel's ComplexWarning went to stderr (two raw lines) and the real part was then classified."""
    with pytest.raises(TumorlensError, match=r"c.nii: NIfTI voxels are complex \(complex64\)"):
        read_frames(nib.Nifti1Image(np.ones((16, 16, 3), np.complex64), np.eye(4)).to_bytes(), name="c.nii")


def test_a_multipage_tiff_gives_one_frame_per_page_and_training_reads_its_first_with_a_warning(tmp_path, caplog):
    """Prediction read the first page only, and the web app did not say so (its audit); a stack is now answered
    page by page, as a multi-frame DICOM is. Training still reads one image per file."""
    from tumorlens.data import read_gray

    pages = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in (10, 200, 90)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    for src, name in ((tmp_path / "m.tif", None), ((tmp_path / "m.tif").read_bytes(), "m.tif")):
        frames = read_frames(src, name=name)
        assert [f.where for f in frames] == [{"frame": 0}, {"frame": 1}, {"frame": 2}]
        assert [float(f.gray.mean()) for f in frames] == [10.0, 200.0, 90.0]
        assert all("pages" not in f.info and f.info["format"] == "TIFF" for f in frames)
    with caplog.at_level("WARNING"):
        assert float(read_gray(tmp_path / "m.tif").mean()) == 10.0
    assert "m.tif: TIFF file with 3 pages; only the first is read" in caplog.text
    pages[0].save(tmp_path / "one.tif")
    (single,) = read_frames(tmp_path / "one.tif")
    assert single.where == {} and "pages" not in single.info


def test_every_page_of_a_multipage_file_is_held_to_the_image_size_limits(tmp_path):
    """The size checks read the first page's size, then seeked: a 5000-px second page passed them."""
    small, wide = Image.new("L", (64, 64), 50), Image.new("L", (5000, 300), 50)
    small.save(tmp_path / "m.tif", save_all=True, append_images=[wide], compression="tiff_deflate")
    with pytest.raises(TumorlensError, match=r"m.tif: image is 5000x300 pixels, a side over the 4096 limit"):
        read_frames(tmp_path / "m.tif")


def test_a_tiff_of_too_many_pages_is_one_error_before_it_fills_the_memory(tmp_path, monkeypatch):
    import tumorlens.readers as readers

    monkeypatch.setattr(readers, "MAX_VOXELS", 5000)  # four 32 x 32 pages fit, a fifth would pass it
    pages = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in range(0, 250, 25)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(TumorlensError, match=r"m.tif: 10 pages of about 1,024 pixels each, over the limit"):
        read_frames(tmp_path / "m.tif")


def test_4d_nifti_and_bundled_files(tmp_path):
    with pytest.raises(TumorlensError, match="4d.nii: NIfTI image is 4-D"):
        read_frames(nifti_bytes(np.zeros((16, 16, 4, 3))), name="4d.nii")
    d = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
    if os.path.exists(os.path.join(d, "anatomical.nii")):
        frames = read_frames(os.path.join(d, "anatomical.nii"))
        assert frames and all("slice" in f.where for f in frames)
    if os.path.exists(os.path.join(d, "example4d.nii.gz")):
        with pytest.raises(TumorlensError, match="4-D"):
            read_frames(os.path.join(d, "example4d.nii.gz"))
    with pytest.raises(TumorlensError, match="bad.nii: corrupt or unreadable NIfTI"):
        read_frames(b"\x00" * 400, name="bad.nii")


@pytest.mark.parametrize("slice_", [None, 0])
def test_a_nifti_volume_with_no_slices_is_a_named_error(tmp_path, slice_):
    """A 0-slice volume crashed auto_slices (np.percentile of nothing) and `slice=0` said "0..-1"."""
    p = tmp_path / "zero.nii.gz"
    p.write_bytes(nifti_bytes(np.zeros((64, 64, 0)), gz=True))
    with pytest.raises(TumorlensError, match=r"^.*zero\.nii\.gz: NIfTI volume has no slices"):
        read_frames(p, slice=slice_)
    with pytest.raises(TumorlensError, match=r"^zero\.nii: NIfTI volume has no slices"):
        read_frames(nifti_bytes(np.zeros((64, 64, 0))), name="zero.nii", slice=slice_)


# --------------------------------------------------------------------------------- gzip bombs
def _gz_with_zeros(head: bytes, zeros_mb: int) -> bytes:
    """gzip of `head` followed by `zeros_mb` MiB of zero bytes, compressed a piece at a time."""
    import zlib

    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [co.compress(head)]
    block = bytes(1 << 20)
    out += [co.compress(block) for _ in range(zeros_mb)]
    return b"".join(out) + co.flush()


def test_a_gzip_bomb_nifti_stops_at_the_size_its_header_declares(tmp_path):
    """`.nii.gz` bytes were gunzipped whole: 2 MB of gzip became 2 GiB of zeros (4.5 GB of memory)."""
    import tracemalloc

    small = nifti_bytes(np.zeros((16, 16, 16), np.float32))  # a valid header declaring 16 KB of voxels
    cases = {"padded.nii.gz": (_gz_with_zeros(small, 64), "its header declares 16,736 bytes"),
             "zeros.nii.gz": (_gz_with_zeros(b"", 64), "holds no NIfTI header")}
    for name, (bomb, words) in cases.items():
        assert len(bomb) < 200_000
        tracemalloc.start()
        try:
            with pytest.raises(TumorlensError, match=r"NIfTI volume decompresses to more than 1\.[01] MB") as e:
                read_frames(bomb, name=name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(e.value).startswith(f"{name}: ") and words in str(e.value)
        assert peak < 16 * 2 ** 20  # the 64 MiB were never held
    p = tmp_path / "padded.nii.gz"  # the CLI reads files of up to 64 MB the same way
    p.write_bytes(cases["padded.nii.gz"][0])
    with pytest.raises(TumorlensError, match="decompresses to more than"):
        read_frames(p)


def test_nifti_decompression_never_passes_the_voxel_limit_at_the_widest_type(monkeypatch):
    import tumorlens.readers as readers

    assert readers.MAX_NIFTI_BYTES == readers.MAX_VOXELS * 16 + readers.NIFTI_HEADER_MARGIN
    data = nifti_bytes(_volume(), gz=True)
    assert len(read_frames(data, name="v.nii.gz")) > 1  # a volume within its header's size reads as before
    monkeypatch.setattr(readers, "MAX_NIFTI_BYTES", 200_000)
    with pytest.raises(TumorlensError, match=r"^v\.nii\.gz: NIfTI volume decompresses to more than 0\.2 MB"):
        read_frames(data, name="v.nii.gz")


def test_a_dicom_without_its_file_meta_header_is_read_like_the_same_file_with_it():
    """An old-archive DICOM (no preamble, no group 0002) was 'corrupt or truncated DICOM pixel data': pydicom
    needs a transfer syntax to decode pixels, and the data set's own encoding says which."""
    import io

    import pydicom

    raw = dicom_bytes(phantom("glioma", 0, 128).astype(np.uint16)[None], wc=128.0, ww=256.0)
    ds = pydicom.dcmread(io.BytesIO(raw))
    del ds.file_meta
    ds.preamble = None
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert b"DICM" not in buf.getvalue()[:200]
    (bare,), (whole,) = read_frames(buf.getvalue(), name="old.dcm"), read_frames(raw, name="new.dcm")
    assert np.array_equal(bare.gray, whole.gray)


def test_a_very_elongated_image_is_refused_before_it_is_padded_to_a_huge_square(tmp_path):
    """A legal 6 KB 60000 x 100 PNG (6 M pixels, under the pixel limit) made preprocessing pad its head box to a
    60000-pixel square: 15.5 GiB in audit, split and train."""
    Image.fromarray(np.zeros((100, 60000), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(TumorlensError, match=r"wide.png: image is 60000x100 pixels, a side over the 4096 limit"):
        read_frames(tmp_path / "wide.png")


def test_a_decoder_error_of_an_unexpected_type_is_a_corrupt_image_not_a_traceback():
    """Pillow raised TypeError('Missing dimensions') for a TIFF whose second page lacks its size."""
    from tumorlens.data import image_error

    e = image_error("bad.tif", TypeError("Missing dimensions"))
    assert isinstance(e, TumorlensError) and str(e) == "bad.tif: corrupt image (TypeError: Missing dimensions)"
    assert isinstance(image_error("x.png", MemoryError()), MemoryError)  # not every failure is the file's


def test_a_ct_volume_in_hounsfield_units_is_refused_as_nifti_and_as_dicom_without_its_modality(tmp_path):
    """A CT in Hounsfield units (air -1000 with noise, as scanners store it) carries no modality in NIfTI, and
    a secondary-capture DICOM says OT: the share of values at air's -1000 HU refuses both; the same pixels made
    non-negative, as magnitude MRI is, are not refused for it."""
    from tumorlens.refusal import check_header

    rng = np.random.default_rng(0)
    head = phantom(size=96).astype(np.float32)
    vol = np.stack([np.where(head > 20, head, -1000.0 + rng.normal(0, 40, head.shape)) for _ in range(6)], -1)
    (fr, *_) = read_frames(nifti_bytes(vol), name="ct.nii")
    assert fr.info["hu_air"] > 0.3 and "a CT image" in check_header(fr.info)
    (mr, *_) = read_frames(nifti_bytes(np.clip(vol + 1000, 0, None)), name="mr.nii")
    assert mr.info["hu_air"] == 0.0 and check_header(mr.info) is None
    stored = np.clip(vol[..., 0] + 1024, 0, 4095).astype(np.uint16)  # raw values, RescaleIntercept -1024
    (dc,) = read_frames(dicom_bytes(stored, modality="OT", slope=1.0, intercept=-1024.0), name="ct.dcm")
    assert dc.info["hu_air"] > 0.3 and "a CT image" in check_header(dc.info)
    (dm,) = read_frames(dicom_bytes(stored, modality="OT"), name="sc.dcm")
    assert dm.info["hu_air"] == 0.0


def test_dicom_descriptions_are_read_for_the_body_part_check():
    from tumorlens.refusal import check_header

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(phantom(size=64).astype(np.uint16))))
    ds.StudyDescription, ds.SeriesDescription = "MR SHOULDER LEFT", "PD fs cor"
    buf = io.BytesIO()
    ds.save_as(buf)
    (fr,) = read_frames(buf.getvalue(), name="shoulder.dcm")
    assert fr.info["descriptions"] == {"StudyDescription": "MR SHOULDER LEFT", "SeriesDescription": "PD fs cor"}
    assert "names the shoulder" in check_header(fr.info)


def _enhanced(frames: np.ndarray, shared: dict, per_frame: list[dict] | None = None) -> bytes:
    """A multi-frame DICOM whose window and rescale live only in its functional groups, as Enhanced MR keeps them."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(frames)))

    def group(d: dict) -> Dataset:
        g = Dataset()
        if "window" in d:
            voi = Dataset()
            voi.WindowCenter, voi.WindowWidth = d["window"]
            g.FrameVOILUTSequence = Sequence([voi])
        if "rescale" in d:
            pvt = Dataset()
            pvt.RescaleSlope, pvt.RescaleIntercept = d["rescale"]
            pvt.RescaleType = "US"
            g.PixelValueTransformationSequence = Sequence([pvt])
        return g

    ds.SharedFunctionalGroupsSequence = Sequence([group(shared)])
    if per_frame is not None:
        ds.PerFrameFunctionalGroupsSequence = Sequence([group(d) for d in per_frame])
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_an_enhanced_dicom_windows_and_rescales_each_frame_as_its_functional_groups_say():
    """The same pixels with the same window and rescale, stored at the top level (classic) or in the functional
    groups (enhanced), give the same frames; a per-frame window outranks the shared one."""
    frames = np.stack([phantom(i=i, size=64).astype(np.uint16) * 8 for i in range(2)])
    classic = read_frames(dicom_bytes(frames, slope=2.0, intercept=-100.0, wc=900.0, ww=1600.0), name="c.dcm")
    enhanced = read_frames(_enhanced(frames, {"window": (900.0, 1600.0), "rescale": (2.0, -100.0)}), name="e.dcm")
    assert [f.info["window"] for f in enhanced] == ["frame window"] * 2
    for c, e in zip(classic, enhanced):
        assert np.array_equal(c.gray, e.gray)
    per = read_frames(_enhanced(frames, {"window": (900.0, 1600.0)}, [{"window": (900.0, 1600.0)},
                                                                       {"window": (300.0, 200.0)}]), name="p.dcm")
    plain = read_frames(_enhanced(frames, {"window": (900.0, 1600.0)}), name="s.dcm")
    assert np.array_equal(per[0].gray, plain[0].gray) and not np.array_equal(per[1].gray, plain[1].gray)


def test_a_voi_lut_on_integer_values_raises_no_pydicom_warning(recwarn, caplog):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(phantom(size=64).astype(np.uint16))))
    lut = Dataset()
    lut.add_new(0x00283002, "US", [256, 0, 8])  # LUTDescriptor
    lut.add_new(0x00283006, "US", list(range(256)))  # LUTData
    ds.VOILUTSequence = Sequence([lut])
    buf = io.BytesIO()
    ds.save_as(buf)
    with caplog.at_level("WARNING"):
        (fr,) = read_frames(buf.getvalue(), name="lut.dcm")
    assert fr.info["window"] == "voi_lut"
    assert not [w for w in recwarn if "VOI LUT" in str(w.message)] and "VOI LUT" not in caplog.text


def _head_volume(n: int = 8) -> np.ndarray:
    """(X, Y, Z) phantom heads on an exactly-zero background, brain values above it (a skull-stripped scan)."""
    return np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(n)], -1)


def test_a_z_scored_skull_stripped_volume_gets_a_dark_background_and_the_same_slices():
    """BraTS-style volumes are z-scored inside the brain with the background exactly 0, i.e. mid-grey; it is
    set to the volume's minimum, so the head is found and shown as in the volume before normalisation."""
    vol = _head_volume()
    vol[vol < 20] = 0  # skull-stripped: background exactly 0
    inside = vol > 0
    zs = np.where(inside, (vol - vol[inside].mean()) / vol[inside].std(), 0).astype(np.float32)
    frames = read_frames(nifti_bytes(zs), name="zs.nii")
    plain = read_frames(nifti_bytes(vol), name="plain.nii")
    assert [f.where for f in frames] == [f.where for f in plain]
    assert frames[0].info["background"].startswith("zero background of an intensity-normalised volume")
    assert plain[0].info["background"] is None
    for f in frames:  # the background is the darkest value again
        assert f.gray.min() == pytest.approx(float(zs.min())) and (f.gray == f.gray.min()).mean() > 0.2


def test_a_stack_of_thick_sagittal_or_coronal_slices_is_refused_but_a_thick_axial_stack_is_read():
    vol = _head_volume(6)
    for zooms, plane in (((5.0, 1.0, 1.0), "sagittal"), ((1.0, 3.0, 1.0), "coronal")):
        with pytest.raises(TumorlensError, match=f"thick.nii: NIfTI volume of {plane} slices"):
            read_frames(nifti_bytes(vol, affine=np.diag([*zooms, 1.0])), name="thick.nii")
    assert read_frames(nifti_bytes(vol, affine=np.diag([0.5, 0.5, 5.0, 1.0])), name="axial.nii")
    assert read_frames(nifti_bytes(vol, affine=np.diag([2.0, 1.0, 1.0, 1.0])), name="aniso.nii")  # not thick


def test_odd_nifti_headers_give_one_line_and_no_library_noise(recwarn, caplog, capfd):
    import nibabel

    vol = _head_volume(3)
    zero = bytearray(nifti_bytes(vol))
    zero[252:256] = (0).to_bytes(2, "little") + (1).to_bytes(2, "little")  # qform_code 0, sform_code 1
    zero[280:328] = bytes(48)  # srow_x, srow_y, srow_z: an all-zero voxel-to-world matrix
    with pytest.raises(TumorlensError, match="singular.nii: the NIfTI affine .* is singular or invalid") as e:
        read_frames(bytes(zero), name="singular.nii")
    assert "\n" not in str(e.value) and "[[" not in str(e.value)
    big = nibabel.Nifti1Image(vol.astype(np.float64) * 1e38, np.eye(4))  # past float32's range
    with pytest.raises(TumorlensError, match="big.nii: NIfTI values exceed the float32 range"):
        read_frames(big.to_bytes(), name="big.nii")
    odd = bytearray(nifti_bytes(vol))
    odd[80:92] = bytes(12)  # pixdim[1..3] = 0: nibabel warns "pixdim[1,2,3] should be non-zero"
    odd[252:256] = bytes(4)  # qform_code = sform_code = 0: no orientation
    with caplog.at_level("WARNING"):
        assert read_frames(bytes(odd), name="nocodes.nii")
    assert "nocodes.nii: NIfTI header holds no orientation" in caplog.text
    assert "pixdim" not in caplog.text and not [w for w in recwarn if "pixdim" in str(w.message)]
    assert "pixdim" not in capfd.readouterr().err
