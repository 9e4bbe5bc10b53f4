"""Predictor on every input kind, statuses, batching, bad inputs, and the predict / model-card CLI."""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from predict_helpers import dicom_bytes, encode, nifti_bytes, phantom, png_bomb
from tumorlens.checkpoint import load_checkpoint
from tumorlens.config import DISCLAIMER, TumorlensError
from tumorlens.data import preprocess_array, read_gray
from tumorlens.predict import DISTANCE_REASON, Predictor, Record

pytest.importorskip("pydicom")
pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def pred(ckpt):
    """The tiny model's feature-distance threshold comes from 32 validation phantoms, so it refuses a few
    fresh phantoms by chance; these tests want answers, so it is switched off (tested on its own below), and
    so is the look-alike detector, whose threshold comes from as few images."""
    p = Predictor(ckpt)
    p.ood.threshold = float("inf")
    p.lookalike = None
    return p


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    Image.fromarray(phantom("glioma", 0, 512)).convert("RGB").save(d / "a.jpg", quality=92)
    Image.fromarray(phantom("pituitary", 1)).save(d / "b.png")
    (d / "c.dcm").write_bytes(dicom_bytes(np.stack([phantom(i=i, size=128) for i in range(2)]).astype(np.uint16),
                                          wc=128.0, ww=256.0))
    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(10)], -1)
    (d / "v.nii.gz").write_bytes(nifti_bytes(vol, gz=True))
    return d


def test_a_folder_skips_notes_and_code_but_a_named_text_file_is_an_error(tmp_path, caplog):
    from tumorlens.predict import expand_inputs

    d = tmp_path / "scans"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(phantom("glioma", 0)).save(d / "a.png")
    (d / "sub" / "IM0001").write_bytes(b"x")  # no suffix: read, as DICOM files often have none
    (d / "sub" / "scan.nii.gz").write_bytes(b"x")
    for name in ("notes.txt", "labels.csv", "DICOMDIR", "sub/run.py"):
        (d / name).write_text("not an image")
    with caplog.at_level("WARNING"):
        got = list(expand_inputs([str(d)]))
    assert [Path(p).name for p, err in got] == ["a.png", "IM0001", "scan.nii.gz"] and all(e is None for _, e in got)
    assert "skipped 4 file(s) that are not images" in caplog.text
    assert list(expand_inputs([str(d / "notes.txt")])) == [(str(d / "notes.txt"), None)]  # named: read, then fails
    only = tmp_path / "docs"
    only.mkdir()
    (only / "readme.md").write_text("#")
    assert list(expand_inputs([str(only)])) == [(str(only), f"{only}: folder holds no files that could be images")]


def test_a_folder_lists_in_path_order_without_hidden_names_or_linked_folders(tmp_path):
    """The scandir walk gives what sorted(rglob) gave: Path order (folder by folder, so 'a/z' before 'a-b',
    unlike string order), hidden names skipped at any depth, symbolic links to folders not followed."""
    from tumorlens.predict import expand_inputs

    d = tmp_path / "scans"
    for rel in ("a/z.png", "a-b/y.png", "a.png", "B.png", "a/.hidden/x.png", ".cache/x.png", "a/.dot.png",
                "a/sub/deep.dcm", "outside/o.png"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(b"x")
    (d / "outside").rename(tmp_path / "outside")
    (d / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (d / "l.png").symlink_to(tmp_path / "outside" / "o.png")
    got = [p for p, _ in expand_inputs([str(d)])]
    want = sorted(str(q) for q in d.rglob("*") if q.is_file() and not any(
        part.startswith(".") for part in q.relative_to(d).parts) and "linked" not in q.parts)
    assert got == [str(q) for q in sorted(Path(w) for w in want)]
    assert [Path(p).relative_to(d).as_posix() for p in got] == ["B.png", "a/sub/deep.dcm", "a/z.png", "a-b/y.png",
                                                               "a.png", "l.png"]


def test_file_suffixes_are_read_as_pathlib_reads_them():
    from tumorlens.predict import _suffix

    for name in ("a.PNG", "a.", ".b", "dir/x.nii.gz", "noext", "a.b/c", "x/", "x.TXT/", "d.d/.e"):
        assert _suffix(name) == Path(name).suffix.lower(), name


def test_plain_images_are_classified_exactly_as_training_preprocesses(pred, files):
    for name in ("a.jpg", "b.png"):
        (rec,) = pred.predict_file(files / name)
        x, _ = preprocess_array(read_gray(files / name, draft=4 * pred.pre.size), pred.pre)
        want = pred.probabilities(x[None])[0]
        assert rec.status in ("ok", "uncertain") and rec.label is not None
        assert np.allclose([rec.probabilities[c] for c in pred.classes], want, atol=2e-6)
        (rb,) = pred.predict_bytes((files / name).read_bytes(), name)
        assert rb.probabilities == rec.probabilities and rb.path == name


def test_dicom_and_png_of_the_same_pixels_give_the_same_answer(pred, tmp_path):
    img = phantom("meningioma", 3, 256)
    (png,) = pred.predict_bytes(encode(img, "PNG"), "m.png")
    (dcm,) = pred.predict_bytes(dicom_bytes(img.astype(np.uint16), wc=128.0, ww=256.0), "m.dcm")
    assert dcm.label == png.label and dcm.status == png.status
    assert np.allclose(list(dcm.probabilities.values()), list(png.probabilities.values()), atol=1e-4)
    (pct,) = pred.predict_bytes(dicom_bytes(img.astype(np.uint16) * 16), "m16.dcm")  # no window: percentiles
    assert pct.label == png.label


def test_a_dicom_with_non_square_pixels_is_answered_like_the_same_slice_as_nifti(pred):
    """A DICOM with PixelSpacing 0.5\\1.0 was classified (and overlaid) squashed to half its width, while the same
    slice as NIfTI with voxel size (2, 1) was made square; both now give the model the same square-pixel slice."""
    import pydicom

    img = phantom("meningioma", 4, 128)
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(img.astype(np.uint16), wc=128.0, ww=256.0)))
    ds.PixelSpacing = [0.5, 1.0]  # rows 0.5 mm apart, columns 1.0 mm: each pixel twice as wide as high
    buf = io.BytesIO()
    ds.save_as(buf)
    vol = img.astype(np.float32)[::-1, ::-1].T[:, :, None]  # inverse of the reader's display transform
    (nii,) = pred.predict_bytes(nifti_bytes(vol, affine=np.diag([2.0, 1.0, 1.0, 1.0])), "m.nii", explain=True)
    (dcm,) = pred.predict_bytes(buf.getvalue(), "m.dcm", explain=True)
    assert dcm.image.shape == nii.image.shape == (128, 256) and dcm.heatmap.shape == (128, 256)
    assert dcm.label == nii.label and dcm.status == nii.status
    assert np.allclose(list(dcm.probabilities.values()), list(nii.probabilities.values()), atol=1e-4)


def test_frames_and_slices_get_one_record_each(pred, files):
    recs = pred.predict_file(files / "c.dcm")
    assert [r.frame for r in recs] == [0, 1] and all(r.slice is None for r in recs)
    recs = pred.predict_file(files / "v.nii.gz")
    assert [r.slice for r in recs] and all(r.frame is None for r in recs)
    assert recs[0].to_dict()["slice"] == recs[0].slice and "frame" not in recs[0].to_dict()
    (one,) = pred.predict_file(files / "v.nii.gz", slice=5)
    assert one.slice == 5


def test_bad_inputs_give_error_records_and_the_batch_goes_on(pred, files, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "bomb.png").write_bytes(png_bomb())
    full = dicom_bytes(phantom(size=64).astype(np.uint16))
    (tmp_path / "cut.dcm").write_bytes(full[:-2000])
    (tmp_path / "nopix.dcm").write_bytes(dicom_bytes(phantom(size=64).astype(np.uint16), pixels=False))
    (tmp_path / "4d.nii").write_bytes(nifti_bytes(np.zeros((16, 16, 4, 2))))
    inputs = [str(files / "b.png"), str(tmp_path / "zero.png"), str(tmp_path / "bomb.png"),
              str(tmp_path / "cut.dcm"), str(tmp_path / "nopix.dcm"), str(tmp_path / "4d.nii"),
              str(tmp_path / "nothere.png"), str(files / "a.jpg")]
    recs = list(pred.predict_paths(inputs, batch=2))
    assert [r.path for r in recs] == inputs
    assert [r.status for r in recs][1:-1] == ["error"] * 6
    assert recs[0].status != "error" and recs[-1].status != "error"
    for r, what in zip(recs[1:-1], ["empty file", "too large", "truncated", "no pixel data", "4-D", "no such file"]):
        assert what in r.reason and r.reason.startswith(r.path) and r.label is None and r.probabilities is None


@pytest.mark.parametrize("workers", [0, 2])
def test_dicom_objects_without_an_image_in_a_folder_are_passed_over_but_named_ones_are_errors(pred, tmp_path,
                                                                                             caplog, workers):
    """A PACS export holds structured reports and presentation states beside its images: in a folder they are
    passed over with one logged line (the run does not fail); named, each is an error record."""
    study = tmp_path / "study"
    study.mkdir()
    Image.fromarray(phantom("glioma", 0)).save(study / "IM1.png")
    for name in ("SR000001", "PR000001"):
        (study / name).write_bytes(dicom_bytes(phantom(size=64).astype(np.uint16), pixels=False))
    with caplog.at_level("WARNING"):
        recs = list(pred.predict_paths([str(study)], workers=workers))
    assert [Path(r.path).name for r in recs] == ["IM1.png"] and recs[0].status != "error"
    assert "passed over 2 DICOM object(s) without an image" in caplog.text
    (named,) = pred.predict_paths([str(study / "SR000001")])
    assert named.status == "error" and "no pixel data" in named.reason
    # `explain` and `predict --explain` hand over the files they found; what the user named decides
    got = list(pred.predict_paths([str(study / "IM1.png"), str(study / "SR000001")], named=[str(study)]))
    assert [Path(r.path).name for r in got] == ["IM1.png"]


def test_a_dicom_localizer_is_refused_by_its_image_type(pred, tmp_path):
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(phantom(size=128).astype(np.uint16))))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    buf = io.BytesIO()
    ds.save_as(buf)
    (rec,) = pred.predict_bytes(buf.getvalue(), "scout.dcm")
    assert rec.status == "rejected" and "LOCALIZER" in rec.reason


def test_batched_paths_match_one_by_one(pred, files):
    paths = [str(files / n) for n in ("a.jpg", "b.png", "c.dcm", "v.nii.gz")]
    batched = list(pred.predict_paths(paths, batch=3))
    single = [r for p in paths for r in pred.predict_file(p)]
    assert [r.to_dict()["path"] for r in batched] == [r.path for r in single]
    for a, b in zip(batched, single):
        assert a.status == b.status and a.label == b.label
        if a.probabilities:
            assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_statuses_rejected_uncertain_and_ood(ckpt):
    pr = Predictor(ckpt)
    (rej,) = pr.predict_bytes(encode(np.zeros((64, 64), np.uint8), "PNG"), "black.png")
    assert rej.status == "rejected" and rej.label is None and rej.probabilities is None and rej.confidence is None
    assert "constant" in rej.reason
    img = encode(phantom("notumor", 2), "PNG")
    pr.threshold = 1.01
    (unc,) = pr.predict_bytes(img, "p.png")
    assert unc.status == "uncertain" and unc.label is not None and "abstention" in unc.reason
    pr.threshold = 0.0
    (ok,) = pr.predict_bytes(img, "p.png")
    assert ok.status == "ok"
    assert pr.ood is not None
    pr.ood.threshold = -1.0
    (ood,) = pr.predict_bytes(img, "p.png")
    assert ood.status == "rejected" and ood.probabilities is None and "feature distance" in ood.reason
    pr.ood.threshold = float("inf")
    assert pr.lookalike is not None
    pr.lookalike.threshold = -1e9
    (look,) = pr.predict_bytes(img, "p.png")
    assert look.status == "rejected" and look.probabilities is None and "look-alike score" in look.reason
    assert look.reason.startswith(DISTANCE_REASON)  # counted with the feature distance by evaluate and benchmarks
    off = Predictor(ckpt, refuse=False)
    (r,) = off.predict_bytes(encode(np.zeros((64, 64), np.uint8), "PNG"), "black.png")
    assert r.status in ("ok", "uncertain")


def test_explain_attaches_full_resolution_heatmaps(pred, files):
    pytest.importorskip("tumorlens.explain")
    (rec,) = pred.predict_file(files / "a.jpg", explain=True)
    assert rec.heatmap.shape == rec.image.shape == (512, 512)
    (rec,) = pred.predict_bytes((files / "b.png").read_bytes(), "b.png", explain=True)
    assert rec.heatmap.shape == rec.image.shape == (256, 256)


# ------------------------------------------------------------------------------------------- CLI
def _main(argv: list[str]) -> int:
    """`tumorlens ...` with the predict parsers added, whether or not cli.py wires them yet."""
    import tumorlens.cli as cli

    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    if "predict" not in sub.choices:
        from tumorlens.cli_predict import add_parsers

        add_parsers(sub)
    a = p.parse_args(argv)
    try:
        return int(a.func(a) or 0)
    except Exception as e:  # noqa: BLE001 - mirror cli.main's one-line errors
        from tumorlens.config import TumorlensError

        if isinstance(e, TumorlensError):
            return 2
        raise


def test_cli_formats_and_exit_codes(ckpt, files, capsys):
    ins = [str(files / "a.jpg"), str(files / "c.dcm")]
    assert _main(["predict", "--model", str(ckpt), *ins]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"# tumorlens predict - {DISCLAIMER}"
    assert "status" in out.splitlines()[1] and "frame 1" in out
    assert _main(["predict", "--model", str(ckpt), "--format", "json", *ins]) == 0
    cap = capsys.readouterr()
    recs = json.loads(cap.out)
    assert [r["path"] for r in recs] == [ins[0], ins[1], ins[1]] and DISCLAIMER in cap.err
    assert all(r["disclaimer"] == DISCLAIMER for r in recs)  # a saved file carries the notice too
    assert _main(["predict", "--model", str(ckpt), "--format", "jsonl", *ins, str(files / "missing.png")]) == 1
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and lines[-1]["status"] == "error"
    assert all(r["disclaimer"] == DISCLAIMER for r in lines)
    assert _main(["predict", "--model", str(ckpt), "--format", "csv", *ins]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["frame"] for r in rows] == ["", "0", "1"] and "p_glioma" in rows[0]
    assert _main(["predict", "--model", str(ckpt), "--format", "json", "--slice", "4",
                  str(files / "v.nii.gz")]) == 0
    assert [r["slice"] for r in json.loads(capsys.readouterr().out)] == [4]
    assert _main(["predict", "--model", str(ckpt), "--format", "json", str(files / "nothere")]) == 1


def test_the_cli_keeps_pillows_warnings_about_a_broken_file_off_the_terminal(ckpt, tmp_path, capsys):
    """A broken TIFF got its one-line error record and, above it, Pillow's "UserWarning: Corrupt EXIF data"
    with a source line; `tumorlens` without --verbose now silences Pillow's UserWarnings."""
    import warnings

    from tumorlens.cli import main
    from tumorlens.readers import read_frames

    bad = tmp_path / "odd.tif"
    bad.write_bytes(b"II*\x00" + bytes(range(8, 200)))
    with warnings.catch_warnings(record=True) as seen:  # the file does make Pillow warn
        warnings.simplefilter("always")
        with pytest.raises(Exception, match="a TIFF file that Pillow cannot decode"):
            read_frames(bad)
    assert any("PIL" in w.filename for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["predict", "--model", str(ckpt), str(bad)]) == 1
    assert [str(w.message) for w in seen if "PIL" in w.filename] == []
    assert "a TIFF file that Pillow cannot decode" in capsys.readouterr().out


def test_cli_explain_writes_overlays(ckpt, files, tmp_path, capsys):
    pytest.importorskip("tumorlens.explain")
    out = tmp_path / "cams"
    assert _main(["predict", "--model", str(ckpt), "--format", "json", "--explain", str(out),
                  str(files / "b.png")]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    if rec["status"] in ("ok", "uncertain"):
        assert (out / "b_gradcam.png").stat().st_size > 1000 and rec["overlay"].endswith("b_gradcam.png")


def test_predict_explain_overlays_name_their_method_and_say_when_a_map_is_empty(ckpt, tmp_path, capsys,
                                                                                  monkeypatch):
    """`predict --explain` wrote `*_gradcam.png` titled with no method, though the map is the model's default
    method (usually `gated`, far from plain Grad-CAM), and passed an all-zero map off as a result."""
    pytest.importorskip("tumorlens.explain")
    from predict_helpers import blank_maps_for, spy_overlays

    from tumorlens.explain import default_method

    method = default_method(load_checkpoint(ckpt).model)
    Image.fromarray(phantom("glioma", 2)).save(tmp_path / "full.png")
    Image.fromarray(phantom("pituitary", 3, size=200)).save(tmp_path / "blank.png")
    blank_maps_for(monkeypatch, (200, 200))  # the map of blank.png is empty
    seen = spy_overlays(monkeypatch)
    out = tmp_path / "cams"
    assert _main(["predict", "--model", str(ckpt), "--format", "jsonl", "--explain", str(out),
                  str(tmp_path / "full.png"), str(tmp_path / "blank.png")]) == 0
    cap = capsys.readouterr()
    recs = {Path(r["path"]).name: r for r in map(json.loads, cap.out.splitlines())}
    assert sorted(seen) == ["blank_gradcam.png", "full_gradcam.png"]  # the file names are kept
    assert all(r["heatmap_method"] == method for r in recs.values())
    assert recs["blank.png"]["heatmap_empty"] is True and recs["full.png"]["heatmap_empty"] is False
    assert seen["full_gradcam.png"].startswith("full.png: ")
    assert f"\n{method} map for '{recs['full.png']['label']}'" in seen["full_gradcam.png"]
    assert seen["blank_gradcam.png"].endswith(f"no evidence for '{recs['blank.png']['label']}' by {method}: "
                                              "empty map")
    warned = [line for line in cap.err.splitlines() if "empty" in line]
    assert len(warned) == 1 and warned[0].startswith(f"{tmp_path / 'blank.png'}: the {method} map for")
    import tumorlens.cli as cli

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["predict", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "heatmap overlay (the model's default method, e.g. gated" in helptext and "Grad-CAM" not in helptext


def test_predict_explain_names_overlays_as_explain_does(ckpt, files, tmp_path, capsys):
    """`predict --explain` named `a/SCAN.PNG` and `b/scan.png` SCAN_gradcam.png and scan_gradcam.png (one file on
    a case-insensitive file system), copied a newline of an input name into a file name and named NIfTI slices
    and DICOM frames unlike `explain`; both commands now name one input's outputs alike."""
    pytest.importorskip("tumorlens.explain")
    d = tmp_path / "in"
    for rel, i in (("a/SCAN.PNG", 0), ("b/scan.png", 1), ("a/new\nline.png", 2)):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(phantom(i=i)).save(d / rel, format="PNG")
    for name in ("c.dcm", "v.nii.gz"):
        (d / name).write_bytes((files / name).read_bytes())
    cams, maps = tmp_path / "cams", tmp_path / "maps"
    assert _main(["predict", "--model", str(ckpt), "--format", "jsonl", "--explain", str(cams), str(d)]) == 0
    recs = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    overlays = {(Path(r["path"]).name, r.get("frame", r.get("slice"))): Path(r["overlay"]).name
                for r in recs if "overlay" in r}
    assert overlays[("SCAN.PNG", None)] == "a__SCAN_gradcam.png"
    assert overlays[("scan.png", None)] == "b__scan_gradcam.png"
    assert overlays[("new\nline.png", None)] == "new_line_gradcam.png"
    assert overlays[("c.dcm", 1)] == "c_frame001_gradcam.png"
    assert len({n.lower() for n in overlays.values()}) == len(overlays) == len(list(cams.iterdir()))
    assert any(k[0] == "v.nii.gz" for k in overlays)
    assert _main(["explain", "--model", str(ckpt), "--no-refuse", "--out", str(maps), str(d)]) == 0
    capsys.readouterr()
    explained = {p.name for p in maps.glob("*.png")}
    assert {n.replace("_gradcam.png", ".png") for n in overlays.values()} <= explained


def test_model_card_renders_metadata_and_never_invents_numbers(ckpt, tmp_path, capsys):
    from tumorlens.checkpoint import save_checkpoint
    from tumorlens.metrics import summarize

    out = tmp_path / "MODEL_CARD.md"
    assert _main(["model-card", "--model", str(ckpt), "--out", str(out)]) == 0
    text = out.read_text()
    # trained on phantoms: no Kaggle licences (test_cli_inputs.py checks the card of a Kaggle-trained model)
    assert DISCLAIMER in text and "CC0" not in text and "licence and provenance of this training data" in text
    assert "| glioma | 24 | 8 | 0 | 0.0 |" in text
    assert "temperature scaling" in text and "uncertain" in text and "Mahalanobis" in text
    assert "inference: the logits of the slice and of its left-right mirror are averaged" in text
    assert "Mahalanobis distance on the average of every conv block's output" in text
    assert "Test set" not in text
    assert "figures below" not in text  # there are no test figures below to point at (a user audit)
    # a model trained on phantoms, not the Kaggle set: the general form of the sequence warnings
    assert "Finding tumours on sequences (T1, T2, FLAIR" in text
    assert "Tumours on a sequence that the training data holds for other classes only" in text
    assert "benchmarks/sequences.py score --model CKPT" in text
    ck = load_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.full((200, 4), 0.1)
    p[np.arange(200), y] = 0.7
    meta = {**ck.meta, "test_metrics": summarize(y, p)}
    ck2 = save_checkpoint(tmp_path / "m.safetensors", ck.model, ck.config, meta)
    assert _main(["model-card", "--model", str(ck2), "--out", str(out)]) == 0
    text = out.read_text()
    assert "### Test set" in text and "accuracy: 100.0 %" in text and "95 % CI" in text
    from dataclasses import replace

    ck3 = save_checkpoint(tmp_path / "plain.safetensors", ck.model, replace(ck.config, flip_average=False), meta)
    assert _main(["model-card", "--model", str(ck3), "--out", str(out)]) == 0
    assert "- inference: the slice alone" in out.read_text()
    assert "histogram-equalised" not in text
    ck7 = save_checkpoint(tmp_path / "eq.safetensors", ck.model,
                          replace(ck.config, preprocess=replace(ck.config.preprocess, equalize=True)), meta)
    assert _main(["model-card", "--model", str(ck7), "--out", str(out)]) == 0
    assert "intensity-normalised, the head histogram-equalised (settings" in out.read_text()
    assert "This model was trained without such curves" in text  # the tiny model trains without augmentation
    ck4 = save_checkpoint(tmp_path / "curves.safetensors", ck.model, replace(ck.config, augment=True, strip=0.0),
                          meta)
    assert _main(["model-card", "--model", str(ck4), "--out", str(out)]) == 0
    assert "This model was trained with such curves on 30% of its images" in out.read_text()  # the default share
    assert "This model was trained without skull-stripped images" in out.read_text()
    ck5 = save_checkpoint(tmp_path / "strip.safetensors", ck.model, replace(ck.config, augment=True, strip=0.5), meta)
    assert _main(["model-card", "--model", str(ck5), "--out", str(out)]) == 0
    assert "This model was trained with 50% of its images skull-stripped" in out.read_text()
    # for a model trained on the Kaggle set, the out-of-scope line about other sequences follows the checkpoint's
    # T2-like rendering (a model trained on other data gets the general line, asserted above)
    from tumorlens.cli_predict import model_card

    kaggle = {**meta, "data": {"name": "brain-tumor-mri-dataset"}}
    assert "trained without the T2-like rendering that narrows that gap" in model_card(
        kaggle, list(ck.classes), {"augment": False}, "m", "x")
    assert "a T2-like rendering in training narrows but does not close that gap" in model_card(
        kaggle, list(ck.classes), {"augment": True, "t2": 0.3}, "m", "x")
    assert "fitted without" not in text and "A CT slice given as an image file may get a class" in text
    meta4 = {**meta, "refusal": {**meta["refusal"], "excluded": {"what": "CT slices of the Kaggle set",
                                                                 "list": "kaggle_ct.csv", "train": 57, "val": 1}},
             "test_metrics": {**meta["test_metrics"], "refused_test": {"n": 1323, "rejected": 9, "rate": 9 / 1323},
                              "refused_test_ct": {"n": 18, "rejected": 17, "rate": 17 / 18}}}
    ck4 = save_checkpoint(tmp_path / "ct.safetensors", ck.model, ck.config, meta4)
    assert _main(["model-card", "--model", str(ck4), "--out", str(out)]) == 0
    text = out.read_text()
    assert ("fitted without the CT slices of the Kaggle set listed in `kaggle_ct.csv` when this model was built "
            "(57 training and 1 validation slices)") in text
    assert "refused as not brain MRI: 9/1323 (0.7 %) of these real MRI slices" in text
    assert "(the 18 CT slices among the test images are counted apart: 17 refused)" in text
    assert "so it refuses most CT slices given as image files" in text
    capsys.readouterr()


def test_record_json_form_has_no_arrays():
    r = Record("x.png", "rejected", reason="blank", heatmap=np.zeros((2, 2)))
    assert r.to_dict() == {"path": "x.png", "status": "rejected", "label": None, "probabilities": None,
                           "confidence": None, "reason": "blank"}


def test_heavy_modules_are_imported_lazily():
    import subprocess
    import sys

    code = ("import sys, tumorlens.predict, tumorlens.readers, tumorlens.refusal, tumorlens.cli_predict; "
            "print(','.join(m for m in ('matplotlib', 'scipy', 'pydicom', 'nibabel') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def _same_records(a: list[Record], b: list[Record], atol: float = 1e-5) -> None:
    assert [(r.path, r.status, r.label, r.reason if r.status in ("error", "rejected") else None,
             r.to_dict().get("frame"), r.to_dict().get("slice")) for r in a] == \
           [(r.path, r.status, r.label, r.reason if r.status in ("error", "rejected") else None,
             r.to_dict().get("frame"), r.to_dict().get("slice")) for r in b]
    for x, y in zip(a, b):
        if x.probabilities:
            assert np.allclose(list(x.probabilities.values()), list(y.probabilities.values()), atol=atol)


def test_worker_processes_give_the_same_records_in_the_same_order(ckpt, files, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "note.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "blank.png")  # refused by the statistics
    for i in range(20):
        Image.fromarray(phantom(["glioma", "notumor"][i % 2], 10 + i)).save(tmp_path / f"p{i:02d}.png")
    inputs = [str(files), str(tmp_path), str(tmp_path / "nothere.png")]
    p = Predictor(ckpt, backend="torch")
    inline = list(p.predict_paths(inputs, batch=8, workers=0))
    pooled = list(p.predict_paths(inputs, batch=8, workers=2))
    assert len(inline) > 23 + 1  # the folder of every format gives one record per frame and slice
    assert {r.status for r in inline} >= {"error", "rejected"} and inline[-1].status == "error"
    _same_records(pooled, inline, atol=0)


def _worker_inputs(files, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "blank.png")  # refused by the statistics
    for i in range(40):
        Image.fromarray(phantom(["glioma", "notumor", "pituitary"][i % 3], 30 + i)).save(tmp_path / f"p{i:02d}.png")
    return [str(files), str(tmp_path), str(tmp_path / "nothere.png")]


def test_with_onnx_runtime_the_workers_run_the_model_and_the_records_stay_the_same(ckpt, files, tmp_path,
                                                                                  monkeypatch):
    pytest.importorskip("onnxruntime")
    inputs = _worker_inputs(files, tmp_path)
    inline = list(Predictor(ckpt, backend="torch").predict_paths(inputs, batch=8, workers=0))
    p = Predictor(ckpt, backend="auto")

    def not_here(*a, **k):
        raise AssertionError("the model ran in the main process")

    p._ort_model(np.zeros((8, 64, 64), np.float32))  # built and checked before the patch below
    monkeypatch.setattr(p, "logits_and_features", not_here)
    pooled = list(p.predict_paths(inputs, batch=8, workers=2))
    assert {r.status for r in pooled} >= {"ok", "error", "rejected"}
    _same_records(pooled, inline, atol=1e-5)


def test_workers_that_cannot_run_the_model_leave_it_to_the_main_process(ckpt, files, tmp_path):
    pytest.importorskip("onnxruntime")
    inputs = _worker_inputs(files, tmp_path)
    inline = list(Predictor(ckpt, backend="torch").predict_paths(inputs, batch=8, workers=0))
    p = Predictor(ckpt, backend="onnx")
    ort = p._ort_model(np.zeros((8, 64, 64), np.float32))
    ort.onnx = b"not an onnx graph"  # every worker fails to build its session
    _same_records(list(p.predict_paths(inputs, batch=8, workers=2)), inline, atol=1e-5)


def test_prepare_task_runs_the_mirrored_model_on_a_task_and_drops_the_inputs(ckpt, files, monkeypatch):
    pytest.importorskip("onnxruntime")
    from tumorlens import prepare

    p = Predictor(ckpt, backend="torch")
    ort = Predictor(ckpt, backend="onnx")._ort_model(np.zeros((8, 64, 64), np.float32))
    monkeypatch.setattr(prepare, "_JOB", {})
    paths = [str(files / "b.png"), str(files / "c.dcm"), str(files / "nothere.png")]
    prepare._init_worker(p.pre, False, None, None)
    plain = [fr for ps in prepare.prepare_task(paths) for fr in ps]
    prepare._init_worker(p.pre, False, None, ort.onnx, True, 16)
    done = [fr for ps in prepare.prepare_task(paths) for fr in ps]
    assert [fr.status for fr in done] == [None, None, None, "error"]  # the DICOM holds two frames
    z, f = p.logits_and_features(np.stack([fr.x for fr in plain[:3]]))
    assert all(fr.x is None for fr in done[:3])
    assert np.allclose(np.stack([fr.z for fr in done[:3]]), z, atol=1e-4)
    assert np.allclose(np.stack([fr.f for fr in done[:3]]), f, atol=1e-4)


def test_worker_prediction_restores_the_blas_thread_count_and_runs_without_threadpoolctl(ckpt, files, tmp_path,
                                                                                         monkeypatch):
    from threadpoolctl import threadpool_info

    inputs = _worker_inputs(files, tmp_path)
    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    recs = list(Predictor(ckpt, backend="torch").predict_paths(inputs, workers=2))
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before
    monkeypatch.setitem(__import__("sys").modules, "threadpoolctl", None)  # not installed
    _same_records(list(Predictor(ckpt, backend="torch").predict_paths(inputs, workers=2)), recs, atol=0)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_onnx_runtime_path_matches_pytorch(ckpt, n):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(n).random((n, 64, 64), dtype=np.float32)
    zt, ft = Predictor(ckpt, backend="torch").logits_and_features(x)
    po = Predictor(ckpt, backend="onnx")
    zo, fo = po.logits_and_features(x)
    assert po._ort, "the ONNX Runtime path should be on"
    assert np.abs(zo - zt).max() < 1e-4 and np.abs(fo - ft).max() < 1e-4


def test_auto_backend_uses_onnx_only_for_large_batches_and_falls_back_to_torch(ckpt, files, monkeypatch):
    pytest.importorskip("onnxruntime")
    paths = [str(files / "b.png")] * 20
    torch_recs = list(Predictor(ckpt, backend="torch").predict_paths(paths, workers=0))
    p = Predictor(ckpt)
    p.predict_file(files / "b.png")
    assert p._ort is None  # one image: no export
    list(p.predict_paths([str(files / "b.png")] * (p.ORT_MIN_BATCH - 1), workers=0))
    assert p._ort is None  # 15 slices are 30 mirrored model inputs, but still too few to pay for an export
    _same_records(list(p.predict_paths(paths, workers=0)), torch_recs, atol=1e-5)
    assert p._ort
    import tumorlens.runtime as rt

    monkeypatch.setattr(rt, "PARITY_ATOL", -1.0)  # any difference now counts as a mismatch
    p2 = Predictor(ckpt)
    _same_records(list(p2.predict_paths(paths, workers=0)), torch_recs, atol=0)
    assert p2._ort is False
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # not installed
    p3 = Predictor(ckpt)
    _same_records(list(p3.predict_paths(paths, workers=0)), torch_recs, atol=0)
    assert p3._ort is False


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_flip_average_is_the_mean_over_the_slice_and_its_mirror(ckpt, backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    x = np.random.default_rng(3).random((20, 64, 64), dtype=np.float32)
    mirror = np.ascontiguousarray(x[:, :, ::-1])
    p = Predictor(ckpt, backend=backend)
    assert p.flip_average  # the default recipe's
    z, f = p.logits_and_features(x)
    p.flip_average = False
    z0, f0 = p.logits_and_features(x)
    zm, fm = p.logits_and_features(mirror)
    assert np.abs(z0 - zm).max() > 1e-3, "the tiny model is not mirror-symmetric by itself"
    assert np.allclose(z, (z0 + zm) / 2, atol=1e-5) and np.allclose(f, (f0 + fm) / 2, atol=1e-5)
    p.flip_average = True
    z2, f2 = p.logits_and_features(mirror)
    assert np.allclose(z2, z, atol=1e-5) and np.allclose(f2, f, atol=1e-5)  # a mirrored slice: same answer


def test_a_checkpoint_trained_without_flip_average_predicts_from_the_slice_alone(ckpt, tmp_path):
    from dataclasses import replace

    from tumorlens.checkpoint import save_checkpoint

    ck = load_checkpoint(ckpt)
    plain = save_checkpoint(tmp_path / "plain.safetensors", ck.model, replace(ck.config, flip_average=False),
                            ck.meta, tuple(ck.classes))
    x = np.random.default_rng(4).random((5, 64, 64), dtype=np.float32)
    p = Predictor(plain, backend="torch")
    assert not p.flip_average
    with torch.no_grad():
        want = ck.model.eval()(torch.from_numpy(x).unsqueeze(1)).numpy()
    assert np.allclose(p.logits(x), want, atol=1e-5)


def test_unknown_backend_is_refused(ckpt):
    with pytest.raises(ValueError, match="backend"):
        Predictor(ckpt, backend="tensorrt")


def test_cli_workers_and_backend_give_the_same_records_and_bad_counts_are_refused(ckpt, files, capsys):
    ins = [str(files / "a.jpg"), str(files / "b.png"), str(files / "c.dcm")]
    assert _main(["predict", "--model", str(ckpt), "--format", "json", *ins]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert _main(["predict", "--model", str(ckpt), "--format", "json", "--workers", "2", "--backend", "torch",
                  *ins]) == 0
    pooled = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["status"], r["label"]) for r in pooled] == [(r["path"], r["status"], r["label"])
                                                                       for r in plain]
    assert _main(["predict", "--model", str(ckpt), "--workers", "-1", *ins]) == 2


def test_a_crash_inside_a_worker_becomes_an_error_record_and_the_batch_goes_on(ckpt, files, monkeypatch):
    import tumorlens.prepare as prep

    real = prep.prepare_file

    def flaky(path, *a, **k):
        if path.endswith("b.png"):
            raise RuntimeError("decoder exploded")
        return real(path, *a, **k)

    monkeypatch.setattr(prep, "prepare_file", flaky)  # forked workers inherit the patched module
    ins = [str(files / "a.jpg"), str(files / "b.png"), str(files / "c.dcm")]
    recs = list(Predictor(ckpt, backend="torch").predict_paths(ins, workers=2))
    assert [r.path for r in recs] == [ins[0], ins[1], ins[2], ins[2]]
    assert recs[1].status == "error" and "decoder exploded" in recs[1].reason and recs[1].reason.startswith(ins[1])
    assert all(r.status != "error" for r in recs[:1] + recs[2:])


def test_worker_count_follows_the_number_of_files():
    from tumorlens.prepare import auto_workers

    assert auto_workers(10) == 0 and auto_workers(127) == 0
    assert 1 <= auto_workers(1000) <= 4


def test_the_worker_side_modules_do_not_import_torch():
    """Worker processes read files and run the exported graph: with a spawn start method they import only
    these, so they must stay torch-free (prepare.py, runtime.OrtSession)."""
    import subprocess
    import sys

    code = "import sys, tumorlens.prepare, tumorlens.runtime, tumorlens.refusal; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-500:]


# ------------------------------------------------------------------------------ damaged inputs (audit)
def test_a_checkpoint_with_nan_weights_is_refused_when_loaded(ckpt, tmp_path):
    """It answered `ok glioma nan`, and jsonl wrote `"confidence": NaN` (not JSON)."""
    from tumorlens.checkpoint import TumorlensError, save_checkpoint

    ck = load_checkpoint(ckpt)
    with torch.no_grad():
        next(ck.model.parameters()).view(-1)[0] = float("nan")
    bad = save_checkpoint(tmp_path / "nan.safetensors", ck.model, ck.config, ck.meta, tuple(ck.classes))
    with pytest.raises(TumorlensError, match=r"nan\.safetensors: checkpoint has non-finite weights \(NaN or inf\)"):
        Predictor(bad)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.setdefault("calibration", {}).update(temperature=-0.8), "temperature must be a positive number"),
    (lambda m: m.setdefault("calibration", {}).update(temperature=0), "temperature must be a positive number"),
    (lambda m: m.setdefault("abstention", {}).update(threshold=1.5), "threshold must be a confidence in [0, 1]"),
    (lambda m: m.setdefault("abstention", {}).update(threshold="0.5"), "threshold must be a confidence in [0, 1]"),
])
def test_a_hand_edited_calibration_that_would_turn_answers_around_is_refused_when_loaded(ckpt, tmp_path, edit,
                                                                                          words):
    """A negative temperature inverted every prediction (accuracy 0.0000 in evaluate, exit code 0)."""
    from tumorlens.checkpoint import TumorlensError, save_checkpoint

    from tumorlens.checkpoint import read_metadata

    ck = load_checkpoint(ckpt)
    doc = read_metadata(ckpt)
    edit(doc)
    bad = _checkpoint_copy(ckpt, tmp_path, "edited.safetensors", metadata=json.dumps(doc))  # edited by hand
    with pytest.raises(TumorlensError, match=re.escape(f"edited.safetensors: checkpoint ") + ".*" + re.escape(words)):
        Predictor(bad)
    meta = json.loads(json.dumps(ck.meta))
    edit(meta)
    with pytest.raises(TumorlensError, match=re.escape(words)):  # nor will save_checkpoint write it
        save_checkpoint(tmp_path / "saved.safetensors", ck.model, ck.config, meta, tuple(ck.classes))


def test_a_checkpoint_naming_fewer_classes_than_its_model_outputs_is_refused_when_loaded(ckpt, tmp_path):
    """It was found only after inference, as 'probs has 4 columns but there are 3 class names', without a file."""
    from tumorlens.checkpoint import TumorlensError, save_checkpoint

    from tumorlens.checkpoint import read_metadata

    ck = load_checkpoint(ckpt)
    doc = {**read_metadata(ckpt), "classes": list(ck.classes)[:3]}
    bad = _checkpoint_copy(ckpt, tmp_path, "three.safetensors", metadata=json.dumps(doc))
    with pytest.raises(TumorlensError, match=r"three\.safetensors: checkpoint names 3 classes but its model has 4"):
        Predictor(bad)
    with pytest.raises(TumorlensError, match="names 3 classes but its model has 4"):
        save_checkpoint(tmp_path / "saved.safetensors", ck.model, ck.config, ck.meta, tuple(ck.classes)[:3])


def test_a_model_that_outputs_nan_gives_error_records_never_answers(ckpt, files):
    """The second line of defence, for a model whose weights are finite but whose output is not: NaN
    compares False with the abstention threshold and passed as `ok`."""
    p = Predictor(ckpt, backend="torch")
    with torch.no_grad():
        next(p.model.parameters()).fill_(float("nan"))
    recs = list(p.predict_paths([str(files / "b.png"), str(files / "a.jpg")], workers=0))
    recs += p.predict_file(files / "b.png", explain=True)
    assert [r.status for r in recs] == ["error"] * 3
    for r in recs:
        assert "not finite" in r.reason and r.reason.startswith(r.path) and r.heatmap is None
        json.dumps(r.to_dict(), allow_nan=False)  # valid JSON: no NaN anywhere
    rec = p.record_from_probs("x.png", np.array([np.inf, 0.0, 0.0, 0.0]))
    assert rec.status == "error" and rec.probabilities is None and rec.confidence is None


def _checkpoint_copy(ckpt, tmp_path, name: str, metadata: str | None = None, cut: int = 0) -> Path:
    """The tiny checkpoint rewritten with other tumorlens metadata, or with its last `cut` bytes missing."""
    from safetensors.torch import load_file, save_file

    from tumorlens.checkpoint import META_KEY

    out = tmp_path / name
    if metadata is not None:
        save_file(load_file(str(ckpt)), str(out), metadata={META_KEY: metadata})
    else:
        raw = Path(ckpt).read_bytes()
        out.write_bytes(raw[:len(raw) - cut])
    return out


def test_a_truncated_checkpoint_is_called_damaged_by_predict_info_and_model_card(ckpt, tmp_path, capsys):
    """info and model-card read only the header and succeeded; predict blamed a version mismatch."""
    from tumorlens.checkpoint import TumorlensError, read_metadata
    from tumorlens.cli import main

    trunc = _checkpoint_copy(ckpt, tmp_path, "trunc.safetensors", cut=1000)
    for load in (load_checkpoint, read_metadata):
        with pytest.raises(TumorlensError, match=r"trunc\.safetensors: checkpoint file is damaged or truncated"):
            load(trunc)
    for argv in (["info"], ["model-card", "--out", str(tmp_path / "card.md")],
                 ["predict", str(tmp_path / "x.png")]):
        assert main([*argv, "--model", str(trunc)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "trunc.safetensors: checkpoint file is damaged or truncated" in err, argv
    assert not (tmp_path / "card.md").exists()


def test_a_checkpoint_without_a_config_is_a_one_line_error_in_info(ckpt, tmp_path, capsys):
    """Metadata `{}` gave `KeyError: 'config'` with a traceback in `tumorlens info`."""
    from tumorlens.cli import main

    empty = _checkpoint_copy(ckpt, tmp_path, "empty.safetensors", metadata="{}")
    for argv in (["info"], ["model-card", "--out", str(tmp_path / "card.md")]):
        assert main([*argv, "--model", str(empty)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{empty}: checkpoint metadata lacks the model configuration" in err, argv


def test_a_hand_edited_calibration_is_one_error_in_model_card_as_in_info(ckpt, tmp_path, capsys):
    """A null temperature or a threshold of the wrong type gave model-card a traceback (an audit)."""
    from tumorlens.checkpoint import read_metadata
    from tumorlens.cli import main

    doc = read_metadata(ckpt)
    for key, field, value in (("calibration", "temperature", None), ("abstention", "threshold", "high")):
        edited = {**doc, key: {**doc.get(key, {}), field: value}}
        bad = _checkpoint_copy(ckpt, tmp_path, f"{key}.safetensors", metadata=json.dumps(edited))
        card = tmp_path / f"{key}.md"
        assert main(["model-card", "--model", str(bad), "--out", str(card)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {bad}: checkpoint ") and field in err, err
        assert not card.exists()


def test_a_dangling_symlink_in_a_folder_is_an_error_not_dropped(tmp_path):
    from tumorlens.predict import expand_inputs

    d = tmp_path / "scans"
    d.mkdir()
    Image.fromarray(phantom()).save(d / "a.png")
    (d / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert list(expand_inputs([str(d)])) == [(str(d / "a.png"), None),
                                             (str(d / "gone.png"), f"{d / 'gone.png'}: broken symbolic link")]
    assert list(expand_inputs([str(d / "gone.png")])) == [(str(d / "gone.png"), f"{d / 'gone.png'}: broken symbolic link")]


def test_predict_explain_reads_neither_its_earlier_overlays_nor_writes_over_an_input(ckpt, tmp_path, capsys):
    """`predict DIR --explain DIR` run twice read its own `*_gradcam.png` back in; the user's scans in DIR are
    still read, and a file named as it is is always read."""
    pytest.importorskip("tumorlens.explain")
    d = tmp_path / "clob"
    d.mkdir()
    Image.fromarray(phantom()).save(d / "scan.png")
    Image.fromarray(phantom(i=1)).save(d / "scan_gradcam.png")  # as left by an earlier run
    _main(["predict", "--model", str(ckpt), "--format", "jsonl", "--explain", str(d), str(d)])
    cap = capsys.readouterr()
    assert [json.loads(s)["path"] for s in cap.out.splitlines()] == [str(d / "scan.png")]
    assert f"ignored 1 file(s) inside the output folder {d}" in cap.err
    # named, both are read; scan.png's overlay may not overwrite the input scan_gradcam.png
    earlier = (d / "scan_gradcam.png").read_bytes()
    named = [str(d / "scan.png"), str(d / "scan_gradcam.png")]
    _main(["predict", "--model", str(ckpt), "--format", "jsonl", "--explain", str(d), *named])
    recs = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in recs] == named
    assert recs[0]["overlay"] == str(d / "scan_2_gradcam.png")  # phantoms are answered, so overlays are written
    assert (d / "scan_gradcam.png").read_bytes() == earlier


def test_slice_with_only_2d_images_logs_one_warning(pred, files, caplog):
    """--slice was silently ignored when no input was a NIfTI volume."""
    with caplog.at_level("WARNING", logger="tumorlens"):
        list(pred.predict_paths([str(files / "a.jpg"), str(files / "b.png"), str(files / "c.dcm")], slice=3))
    assert [r.getMessage() for r in caplog.records] == [
        "--slice 3 applies to NIfTI volumes only, and no input is one by its name: ignored"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="tumorlens"):
        list(pred.predict_paths([str(files / "b.png"), str(files / "v.nii.gz")], slice=3))
    assert not caplog.records


def test_error_reasons_are_one_line_for_messages_that_span_lines(pred, tmp_path):
    """nibabel's message for a cut NIfTI ends "\\n - could the file be damaged?"; records print as one line."""
    vol = np.stack([phantom(i=k, size=64).astype(np.float32) for k in range(6)], -1)
    cut = nifti_bytes(vol)[:400]
    (rec,) = pred.predict_bytes(cut, "cut.nii")
    assert rec.status == "error" and rec.reason.startswith("cut.nii: corrupt or unreadable NIfTI file")
    assert "could the file be damaged?" in rec.reason
    assert "\n" not in rec.reason and "  " not in rec.reason
    (tmp_path / "cut.nii").write_bytes(cut)
    for workers in (0, 2):
        (from_path,) = list(pred.predict_paths([str(tmp_path / "cut.nii")], workers=workers))
        assert from_path.reason == rec.reason.replace("cut.nii", str(tmp_path / "cut.nii"), 1)


def test_worker_tasks_keep_every_path_in_order_and_shrink_towards_the_end():
    from tumorlens.prepare import FILES_PER_TASK, MIN_FILES_PER_TASK, split_tasks

    paths = [f"{i}.png" for i in range(1000)]
    tasks = split_tasks(paths, workers=2)
    assert [p for t in tasks for p in t] == paths
    sizes = [len(t) for t in tasks]
    assert sizes[0] == FILES_PER_TASK and all(a >= b for a, b in zip(sizes, sizes[1:]))
    assert sizes[-2] == MIN_FILES_PER_TASK and max(sizes[-4:]) < FILES_PER_TASK
    assert split_tasks([], workers=2) == [] and split_tasks(["a"], workers=2) == [["a"]]


def test_one_path_given_as_a_string_is_one_input_not_its_characters(pred, files, tmp_path, monkeypatch):
    """predict_paths("x.png") iterated the characters: "." predicted the whole working folder, "/" walked
    the whole disk."""
    monkeypatch.chdir(files)
    for one in ("b.png", Path("b.png")):
        recs = list(pred.predict_paths(one, workers=0))
        assert [r.path for r in recs] == ["b.png"] and recs[0].status != "error"


def test_a_tiny_text_file_without_a_suffix_is_an_error_record_not_a_crash(pred, tmp_path):
    """An 8-byte text file is tried as DICOM (no suffix): pydicom raised struct.error, which ended the batch."""
    (tmp_path / "timezone").write_bytes(b"Etc/UTC\n")
    Image.fromarray(phantom("glioma", 0)).save(tmp_path / "z.png")
    (bad,) = pred.predict_file(tmp_path / "timezone")
    assert bad.status == "error" and "\n" not in bad.reason
    recs = list(pred.predict_paths([str(tmp_path)], workers=0))
    assert [(Path(r.path).name, r.status == "error") for r in recs] == [("timezone", True), ("z.png", False)]


def test_an_in_memory_slice_is_read_in_any_usual_layout_and_bad_ones_are_error_records(pred):
    import torch as _torch

    g = phantom("glioma", 0)
    want = pred.predict_gray(g).probabilities
    for same in (g[..., None], g[None], _torch.from_numpy(g[None, None].astype(np.float32)), np.stack([g] * 3, -1),
                 np.stack([g] * 3), Image.fromarray(g), Image.fromarray(np.stack([g] * 3, -1))):
        assert pred.predict_gray(same).probabilities == pytest.approx(want, abs=1e-5)
    colour = pred.predict_gray(np.stack([g, g // 2, g // 3], -1))
    assert colour.status == "rejected" and "colour" in colour.reason  # colour measured as the readers do
    refusing_off = Predictor(pred.ckpt, refuse=False)
    for bad, why in ((np.zeros((0, 0)), "got shape (0, 0)"), (None, "no image"), (g.astype(complex), "complex"),
                     (np.zeros((4, 64, 64)), "got shape (4, 64, 64)")):
        for p in (pred, refusing_off):
            rec = p.predict_gray(bad, path="x")
            assert rec.status == "error" and why in rec.reason, (why, rec)


def test_an_upload_can_be_given_as_a_file_object_and_an_empty_checkpoint_path_is_refused(pred, files):
    import io as _io

    from tumorlens.checkpoint import load_checkpoint
    from tumorlens.config import TumorlensError

    data = (files / "b.png").read_bytes()
    assert pred.predict_bytes(_io.BytesIO(data), "b.png")[0].probabilities == \
        pred.predict_bytes(data, "b.png")[0].probabilities
    with pytest.raises(TumorlensError, match="empty checkpoint path"):
        load_checkpoint("")  # silently loaded the bundled model


def test_a_model_saved_with_a_config_it_was_not_built_from_is_refused_at_save_time(tmp_path):
    from tumorlens.checkpoint import save_checkpoint
    from tumorlens.config import ModelConfig, TrainConfig, TumorlensError
    from tumorlens.model import build_model

    pool = build_model(ModelConfig(channels=(8, 8, 8, 8), head="pool", dense=8), 64)
    with pytest.raises(TumorlensError, match="the model does not match its config"):
        save_checkpoint(tmp_path / "m.safetensors", pool, TrainConfig())  # default config: the LSTM head
    assert not (tmp_path / "m.safetensors").exists()


def test_a_predictor_first_used_from_two_threads_builds_its_onnx_copy_once(ckpt):
    """Both threads exported at once: one export failed (the Predictor then stayed on PyTorch for good) and the
    process could be left with every warning ignored (a library audit)."""
    import threading
    import warnings

    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).random((16, 64, 64), dtype=np.float32)
    for _ in range(8):  # the race is a race: the old code failed about one trial in ten
        pr = Predictor(ckpt)
        before = list(warnings.filters)
        gate = threading.Barrier(2)
        out = []

        def first_use():
            gate.wait()
            out.append(pr.probabilities(x))

        threads = [threading.Thread(target=first_use) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pr._ort not in (None, False) and list(warnings.filters) == before
        assert np.allclose(out[0], out[1], atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (lambda x: x * 255, r"must lie in \[0, 1\]"),
    (lambda x: np.where(x > 0.5, np.nan, x), "NaN or infinite"),
    (lambda x: x[0], r"shape \(N, 64, 64\)"),
    (lambda x: x[:, None], r"shape \(N, 64, 64\)"),
    (lambda x: x[:, :32, :32], r"shape \(N, 64, 64\)"),
    (lambda x: list(x), "numpy array"),
])
def test_preprocessed_inputs_out_of_range_or_shape_are_one_error_not_a_silent_answer(pred, bad, message):
    """0..255 inputs flipped a glioma to "notumor" at 0.985 without a word; wrong shapes failed inside torch or
    ONNX Runtime, differently by batch size (a library audit)."""
    x = np.random.default_rng(1).random((20, 64, 64), dtype=np.float32)
    for n in (2, 20):  # the PyTorch and the ONNX Runtime sizes
        with pytest.raises(TumorlensError, match=message):
            pred.probabilities(bad(x[:n]))
    from tumorlens.explain import explain_batch

    with pytest.raises(TumorlensError, match=r"in \[0, 1\]"):
        explain_batch(pred.model, x[:2, None] * 255)


def test_predict_gray_puts_transparent_pixels_on_black_as_the_file_readers_do(pred, tmp_path):
    """An RGBA image with white hidden under alpha 0: the file was answered as the slice on black, the same
    pixels in memory (PIL image or array) as the slice on white (a library audit)."""
    g = phantom("glioma", 3, 128)
    rgba = np.dstack([np.full_like(g, 255)] * 3 + [np.zeros_like(g)])
    inside = g > 20
    rgba[inside, :3] = g[inside, None]
    rgba[inside, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    from_file = next(pred.predict_paths([str(tmp_path / "rgba.png")]))
    for held in (Image.open(tmp_path / "rgba.png"), rgba, rgba.astype(np.float32) / 255):
        rec = pred.predict_gray(held)
        assert (rec.status, rec.label) == (from_file.status, from_file.label)
        assert rec.probabilities == pytest.approx(from_file.probabilities, abs=1e-4)
