"""Bad or risky command-line inputs found by a user audit of split, audit, train, info and model-card: each is
a one-line error (or a warning) said before any long work, never a traceback, a silently wrong result or an
input destroyed by an output."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tumorlens.cli import main
from tumorlens.config import TumorlensError
from tumorlens.synthetic import make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("d") / "data", n_per_class=10, size=96, seed=5)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


TRAIN = ["--set", "epochs=2", "--set", "threads=1", "--set", "batch_size=16"]


def test_resume_with_another_split_is_refused(data, tmp_path, capsys, monkeypatch):
    """Only the settings were compared: --resume with another --split carried on and recorded the new split in
    the checkpoint beside the old split.csv."""
    import tumorlens.train as tr

    run = tmp_path / "run"
    first = tmp_path / "s1.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--seed", "1", "--out", str(first)]) == 0
    real = tr.train

    def cut(*a, **k):  # stop after the first epoch, as Ctrl-C would
        def stop(r):
            raise KeyboardInterrupt
        return real(*a, **{**k, "on_epoch": stop})

    monkeypatch.setattr(tr, "train", cut)
    capsys.readouterr()
    assert main(["train", str(data), "--split", str(first), "--out", str(run)] + TRAIN) == 130  # interrupted
    err = capsys.readouterr().err
    assert err.count("interrupted") == 1 and "--resume" in err  # once, with the way on
    monkeypatch.setattr(tr, "train", real)
    assert (run / "state.pt").exists()
    other = tmp_path / "s7.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--seed", "7", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["train", str(data), "--split", str(other), "--out", str(run), "--resume"] + TRAIN) == 2
    err = _err(capsys)
    assert "--resume needs the split of the interrupted run" in err and "rows differ" in err
    assert main(["train", str(data), "--split", str(first), "--out", str(run), "--resume"] + TRAIN) == 0


@pytest.mark.parametrize("case", ["model-card onto its model", "info split onto its model", "split onto groups"])
def test_an_output_that_is_one_of_the_commands_inputs_is_refused(ckpt, data, tmp_path, capsys, case):
    import shutil

    model = tmp_path / "m.safetensors"
    shutil.copy(ckpt, model)
    before = model.read_bytes()
    if case == "model-card onto its model":
        args = ["model-card", "--model", str(model), "--out", str(model)]
    elif case == "info split onto its model":
        args = ["info", "--model", str(model), "--split-out", str(model)]
    else:
        groups = tmp_path / "g.csv"
        groups.write_text("path,group\nglioma/glioma_000.png,a\n")
        before, model = groups.read_bytes(), groups
        args = ["split", str(data), "--strategy", "clean", "--groups", str(groups), "--out", str(groups)]
    assert main(args) == 2
    assert "is also an input of this command" in _err(capsys)
    assert model.read_bytes() == before


@pytest.mark.parametrize("command", ["split", "audit", "train", "evaluate"])
def test_an_output_inside_the_dataset_folder_is_refused_before_any_work(ckpt, data, tmp_path, capsys, command):
    """A split CSV written into a class folder replaced an image; a run folder beside the class folders made
    every later command fail with 'unknown class folder'."""
    inside = data / "glioma" / "x.csv" if command == "split" else data / "out"
    args = {"split": ["split", str(data), "--strategy", "stratified", "--out", str(inside)],
            "audit": ["audit", str(data), "--out", str(inside)],
            "train": ["train", str(data), "--strategy", "stratified", "--out", str(inside)] + TRAIN,
            "evaluate": ["evaluate", str(data), "--split", str(tmp_path / "s.csv"), "--model", str(ckpt),
                         "--out", str(inside)]}[command]
    assert main(args) == 2
    assert "lies inside the dataset folder" in _err(capsys)
    assert not inside.exists()


def test_folders_beside_training_and_testing_are_named_in_a_warning(tmp_path, caplog):
    from tumorlens.data import scan_dataset

    for sub in ("Training/glioma", "Testing/glioma", "Validation/glioma"):
        (tmp_path / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / sub / "a.png")
    with caplog.at_level("WARNING"):
        entries = scan_dataset(tmp_path)
    assert len(entries) == 2 and "ignored the folder(s) Validation/ beside" in caplog.text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_in_a_class_folder_is_skipped_not_read_forever(tmp_path, caplog):
    from tumorlens.data import scan_dataset

    (tmp_path / "glioma").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "glioma" / "a.png")
    os.mkfifo(tmp_path / "glioma" / "pipe.png")
    # a link to a pipe or a device hung the scan too (a helper's audit); a broken link stays, for the loader
    os.symlink(tmp_path / "glioma" / "pipe.png", tmp_path / "glioma" / "link.png")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", tmp_path / "glioma" / "zero.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "glioma" / "broken.png")
    with caplog.at_level("WARNING"):
        entries = scan_dataset(tmp_path)
    assert [e.path for e in entries] == ["glioma/a.png", "glioma/broken.png"]
    assert "pipe.png: not a regular file" in caplog.text and "link.png: not a regular file" in caplog.text


def test_an_unwritable_cache_is_said_once_not_once_per_image(tmp_path, monkeypatch, caplog):
    import tumorlens.data as data
    from tumorlens.data import load_dataset

    for i in range(5):
        (tmp_path / "d" / "glioma").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(tmp_path / "d" / "glioma" / f"{i}.png")
    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_CACHE_WARNED", False)
    with caplog.at_level("WARNING"):
        load_dataset(tmp_path / "d", workers=1)
    assert caplog.text.count("cannot write the cache") == 1


def test_a_class_without_training_images_is_refused_and_a_small_val_part_is_warned_about(data, tmp_path, capsys):
    split = tmp_path / "s.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--out", str(split)]) == 0
    rows = list(csv.DictReader(open(split)))
    for r in rows:
        if r["label"] == "notumor" and r["split"] == "train":
            r["split"] = "test"
    with open(split, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    capsys.readouterr()
    assert main(["train", str(data), "--split", str(split), "--out", str(tmp_path / "run")] + TRAIN) == 2
    err = _err(capsys)
    assert "the train part has no notumor images" in err


@pytest.mark.parametrize("setting, words", [
    ("model=3", "model is a group of settings"), ("preprocess=5", "preprocess is a group of settings"),
    ("seed=99999999999999999999", "seed must be in [0, 2^32)"),
    ("model.num_classes=2", "model.num_classes is the number of classes"),
    ("model.lstm_hidden=10000000", "model.lstm_hidden must be at most 4096"),
])
def test_a_setting_of_the_wrong_shape_or_size_is_a_one_line_error(data, tmp_path, capsys, setting, words):
    assert main(["train", str(data), "--strategy", "stratified", "--out", str(tmp_path / "r"), "--set", setting]) == 2
    assert words in _err(capsys)


def test_a_negative_split_seed_is_a_one_line_error(data, tmp_path, capsys):
    assert main(["split", str(data), "--strategy", "stratified", "--seed", "-1", "--out", str(tmp_path / "s.csv")]) == 2
    assert "--seed must be from 0 to" in _err(capsys)


def test_a_groups_file_that_names_no_image_or_comes_with_a_given_split_is_refused(data, tmp_path, capsys):
    groups = tmp_path / "g.csv"
    groups.write_text("path,group\nTraining/glioma/elsewhere.jpg,a\n")
    assert main(["split", str(data), "--strategy", "clean", "--groups", str(groups), "--out", str(tmp_path / "s.csv")]) == 2
    assert "none of its 1 paths is an image of" in _err(capsys)
    assert main(["train", str(data), "--split", str(tmp_path / "x.csv"), "--groups", str(groups),
                 "--out", str(tmp_path / "r")]) == 2
    assert "drop --groups" in _err(capsys)


def test_checkpoint_files_that_are_not_whole_say_what_they_are(ckpt, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(Path(ckpt).read_bytes())
    assert main(["info", "--model", str(run)]) == 2
    assert f"did you mean {run / 'model.safetensors'}" in _err(capsys)
    (tmp_path / "zero.safetensors").write_bytes(b"")
    assert main(["info", "--model", str(tmp_path / "zero.safetensors")]) == 2
    assert "empty file (0 bytes)" in _err(capsys)
    raw = Path(ckpt).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    (tmp_path / "cut.safetensors").write_bytes(raw[:8 + n // 2])  # cut inside its header
    assert main(["model-card", "--model", str(tmp_path / "cut.safetensors"), "--out", str(tmp_path / "c.md")]) == 2
    assert "damaged or truncated" in _err(capsys)


def test_a_not_mri_list_without_entries_and_a_train_out_that_is_a_file_are_refused(data, tmp_path, capsys):
    lst = tmp_path / "ct.csv"
    lst.write_text("sha256\n")
    assert main(["train", str(data), "--strategy", "stratified", "--not-mri", str(lst), "--out",
                 str(tmp_path / "r")] + TRAIN) == 2
    assert "lists no images" in _err(capsys)
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", str(data), "--strategy", "stratified", "--out", str(f)] + TRAIN) == 2
    assert "is a file, not a run folder" in _err(capsys)


def test_the_model_card_claims_a_leak_free_kaggle_split_only_for_one(ckpt, tmp_path):
    from tumorlens.cli_predict import model_card

    text = model_card({"data": {"name": "my-scans"}, "split": {"strategy": "stratified"}}, ["glioma"], {}, "m", "x")
    assert "CC0" not in text and "not recorded in the checkpoint" in text
    assert "may straddle train and test" in text and "do not straddle" not in text
    text = model_card({"data": {"name": "brain-tumor-mri-dataset"}, "split": {"strategy": "clean"}}, ["glioma"], {},
                      "m", "x")
    assert "CC0" in text and "CC BY 4.0" in text and "PLoS ONE 10(10)" in text and "do not straddle" in text


def test_a_config_file_that_gives_a_setting_twice_is_refused(data, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"epochs": 1, "model": {"dense": 32, "dense": 64}, "epochs": 2}')
    assert main(["train", str(data), "--strategy", "stratified", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    # the nested object is read first: its repeated key is the one named
    assert err == f"error: {cfg}: the setting(s) dense appear more than once; give each once"


def test_split_and_scans_warn_about_label_conflicts_misfiled_folders_empty_and_missing_classes(tmp_path, capsys,
                                                                                               caplog):
    """A lab's export: the same image in two class folders, a class folder filed inside another, an empty class
    folder, a class with no folder. Only `audit` said anything about the first; the others passed silently."""
    from predict_helpers import phantom

    data = tmp_path / "data"
    for c, n in (("glioma", 6), ("meningioma", 6), ("notumor", 6)):
        (data / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(phantom(c, i, 64)).save(data / c / f"{c}{i}.png")
    (data / "meningioma" / "copy_of_glioma0.png").write_bytes((data / "glioma" / "glioma0.png").read_bytes())
    (data / "glioma" / "meningioma").mkdir()
    Image.fromarray(phantom("meningioma", 9, 64)).save(data / "glioma" / "meningioma" / "m9.png")
    (data / "pituitary").mkdir()  # empty
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s.csv")]) == 0
    err = capsys.readouterr().err
    assert "1 group(s) of copies of one image lie in folders of different classes" in err
    assert "glioma/meningioma: a folder named for the class meningioma inside the glioma folder" in caplog.text
    # train --strategy makes its split as `split` does, and now says so too (it said nothing; an audit)
    (data / "pituitary" / "p.png").write_bytes((data / "notumor" / "notumor0.png").read_bytes())
    (data / "pituitary" / "q.png").write_bytes((data / "notumor" / "notumor1.png").read_bytes())
    assert main(["train", str(data), "--strategy", "stratified", "--out", str(tmp_path / "run"), "--set",
                 "epochs=1", "--set", "threads=1", "--set", "batch_size=8"]) == 0
    assert "group(s) of copies of one image lie in folders of different classes" in capsys.readouterr().err
    for f in ("p.png", "q.png"):
        (data / "pituitary" / f).unlink()
    assert caplog.text.count("pituitary: class folder holds no files") == 1  # said once, not per scan
    Image.fromarray(phantom("glioma", 7, 64)).save(data / "loose.png")  # beside the class folders: no class
    (data / "notumor" / "linked").symlink_to(data / "glioma", target_is_directory=True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s1.csv")]) == 0
    assert "ignored 1 image(s) outside the class folders (e.g. loose.png)" in caplog.text
    assert "notumor/linked: a symbolic link to a folder, not followed" in caplog.text
    (data / "loose.png").unlink()
    (data / "notumor" / "linked").unlink()
    (data / "pituitary").rmdir()
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s2.csv")]) == 0
    assert "no folder for the class(es) pituitary" in caplog.text


def test_a_dicom_file_in_a_training_set_is_named_as_dicom_not_as_an_unknown_format(tmp_path):
    from predict_helpers import dicom_bytes, phantom
    from tumorlens.data import read_gray

    p = tmp_path / "IM0001"
    p.write_bytes(dicom_bytes(phantom(size=64).astype(np.uint16)))
    with pytest.raises(TumorlensError, match="IM0001: a DICOM file; datasets for audit, split and training are "
                                             "read as PNG/JPEG/BMP/TIFF images only"):
        read_gray(p)


def test_training_warns_when_a_class_has_no_val_images(data, tmp_path, capsys):
    split = tmp_path / "s.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--seed", "1", "--val-size", "0.4",
                 "--out", str(split)]) == 0
    rows = list(csv.DictReader(split.open()))
    for r in rows:  # no pituitary image left in val
        if r["label"] == "pituitary" and r["split"] == "val":
            r["split"] = "train"
    assert sum(r["split"] == "val" for r in rows) >= 10
    with split.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    capsys.readouterr()
    assert main(["train", str(data), "--split", str(split), "--out", str(tmp_path / "run"), "--set", "epochs=1",
                 "--set", "threads=1", "--set", "batch_size=16", "--set", "model.channels=[8,8,8,8]",
                 "--set", "model.lstm_hidden=8", "--set", "model.dense=8"]) == 0
    assert "the val part has no pituitary images" in _err(capsys)


def test_the_model_card_words_kaggle_specific_failure_modes_only_for_a_kaggle_model():
    """A lab's model trained on its own scans got the Kaggle set's sources, CT folders and T2 figures stated as
    facts about its training data (an audit of the card of a user-trained model)."""
    from tumorlens.cli_predict import model_card

    user = model_card({"data": {"name": "my-scans"}}, ["glioma", "notumor"], {"t2": 0.3}, "m", "x")
    bundled = model_card({"data": {"name": "brain-tumor-mri-dataset"}}, ["glioma", "notumor"], {"t2": 0.3}, "m", "x")
    for claim in ("The Kaggle classes come from different sources", "The Kaggle set holds CT slices",
                  "Tumours on T2-weighted slices: the Kaggle tumour classes", "with a model trained on the Kaggle set"):
        assert claim in bundled and claim not in user
    assert "can partly learn the source instead of the anatomy" in user
    assert "a tumour on the other sequence can be called" in user and "11 of 13 held-out T2" in user
    assert "CT slices in the training data" in user


def test_the_model_card_says_selective_figures_leave_refusal_out_and_gives_what_predict_answers():
    from tumorlens.cli_predict import _metrics_section

    m = {"n": 1341, "selective": {"at_threshold": {"threshold": 0.771, "coverage": 0.923, "accuracy": 0.972}},
         "deployed": {"n": 1341, "answered": 1221, "coverage": 0.911, "accuracy_answered": 0.971, "uncertain": 99,
                      "rejected": 21, "tumours_answered": 863, "tumours_answered_notumor": 4}}
    text = "\n".join(_metrics_section(m, "Test set"))
    assert "at the abstention threshold 0.771, scoring every test slice with refusal off: 92.3 % above it" in text
    assert ("as `tumorlens predict` answers the test files (refusal and abstention on): 1221/1341 (91.1 %) answered, "
            "97.1 % of them correct; 99 `uncertain`, 21 refused; tumour slices answered `notumor`: 4 of 863") in text


def test_a_cache_entry_of_the_wrong_shape_or_with_nan_is_rebuilt_not_trusted(tmp_path, monkeypatch, caplog):
    """Entries with a (7, 5) image gave a RuntimeError traceback in evaluate, audit and train; NaN ones an error
    naming no file (a helper's audit)."""
    import io

    from tumorlens.config import Preprocess
    from tumorlens.data import _cache_path, load_cached

    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "cache"))
    img = tmp_path / "a.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(img)
    pre = Preprocess()
    sha, good = load_cached(str(img), pre)
    for bad in (np.zeros((7, 5), np.float32), np.full((pre.size, pre.size), np.nan, np.float32)):
        buf = io.BytesIO()
        np.savez(buf, image=bad, dhash=good.dhash, dhash_mirror=good.dhash_mirror, shape=np.array(good.orig_shape))
        _cache_path(sha, pre).write_bytes(buf.getvalue())
        caplog.clear()
        with caplog.at_level("WARNING"):
            _, d = load_cached(str(img), pre)
        assert np.array_equal(d.image, good.image) and "rebuilding damaged cache entry" in caplog.text


@pytest.mark.skipif(os.name == "nt", reason="no control characters in Windows file names")
def test_a_file_name_with_a_carriage_return_is_skipped_so_the_split_reads_back(tmp_path, caplog):
    """`cr\\rx.png` was written unquoted into split.csv, which then failed to read ("split must be train, val or
    test, got None") and left a training unable to resume (an audit)."""
    from tumorlens.split import read_split

    data = tmp_path / "data"
    for k, c in enumerate(("glioma", "meningioma", "notumor", "pituitary")):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((32, 32), 30 * i + 40 + 7 * k, np.uint8)).save(data / c / f"{i}.png")
    (data / "notumor" / "cr\rx.png").write_bytes((data / "notumor" / "0.png").read_bytes())
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s.csv")]) == 0
    assert "notumor/cr\\rx.png: its name holds a control character; rename the file" in caplog.text
    assert len(read_split(tmp_path / "s.csv")) == 12


@pytest.mark.skipif(os.name == "nt", reason="file names are text on Windows")
def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning_not_a_traceback(tmp_path, capsys, caplog):
    """`d\\xfe.png` in a class folder ended split, train and audit with a UnicodeEncodeError traceback."""
    data = tmp_path / "data"
    for k, c in enumerate(("glioma", "meningioma", "notumor", "pituitary")):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((32, 32), 30 * i + 40 + 7 * k, np.uint8)).save(data / c / f"{i}.png")
    bad = os.path.join(os.fsencode(data / "glioma"), b"d\xfe.png")
    with open(bad, "wb") as f:
        f.write((data / "glioma" / "0.png").read_bytes())
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s.csv")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert "glioma/d\\xfe.png: its name is not valid UTF-8 text; rename the file" in caplog.text
    assert "d\\xfe.png" not in (tmp_path / "s.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("argv", [["explain", "IMG", "--out", "FILE"], ["predict", "IMG", "--explain", "FILE"],
                                  ["demo", "--out", "FILE"]])
def test_an_output_folder_that_is_an_existing_file_is_one_line_naming_it(tmp_path, capsys, argv):
    """explain, demo and predict --explain said a bare "File exists" (the I/O audit)."""
    (tmp_path / "f").write_text("a file")
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    argv = [str(img) if v == "IMG" else str(tmp_path / "f") if v == "FILE" else v for v in argv]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: {tmp_path / 'f'}: {argv[argv.index(str(tmp_path / 'f')) - 1]} must be a folder, and a "
                   f"file of that name exists"]


def test_many_unreadable_files_in_a_dataset_are_named_up_to_a_limit_then_counted(tmp_path, caplog):
    import tumorlens.data as data
    from tumorlens.data import load_dataset

    (tmp_path / "glioma").mkdir()
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(tmp_path / "glioma" / "a.png")
    for i in range(data.MAX_SKIP_LINES + 15):
        (tmp_path / "glioma" / f"note{i}.png").write_text("not an image")
    with caplog.at_level("WARNING"):
        ds = load_dataset(tmp_path, workers=1, use_cache=False)
    assert len(ds.skipped) == data.MAX_SKIP_LINES + 15
    assert caplog.text.count("WARNING  tumorlens.data:data.py") <= data.MAX_SKIP_LINES + 3
    assert "skipped 15 more unreadable file(s)" in caplog.text


def test_predict_with_stdout_closed_is_one_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    monkeypatch.setattr(sys, "stdout", None)  # what Python sets when fd 1 is closed at start (`>&-`)
    assert main(["predict", str(img)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: standard output is closed: what `tumorlens predict` prints would be lost; redirect it to a file")


def test_info_with_stdout_closed_says_so_instead_of_exiting_0_with_nothing_said(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["info"]) == 2
    assert "standard output is closed" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this platform")
def test_a_full_stdout_is_named_in_the_error(tmp_path):
    """`tumorlens info > /dev/full` said "No space left on device" without saying where."""
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "tumorlens", "info"], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: standard output: No space left on device"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_given_to_predict_is_called_what_it_is(tmp_path):
    """It was "no such file or folder" (the I/O audit)."""
    from tumorlens.predict import expand_inputs

    os.mkfifo(tmp_path / "pipe.png")
    assert list(expand_inputs([str(tmp_path / "pipe.png")])) == [
        (str(tmp_path / "pipe.png"), f"{tmp_path / 'pipe.png'}: not a regular file (a device, pipe or socket)")]


def test_library_noise_stays_off_stderr_beside_the_one_line_errors(tmp_path):
    """A JPEG named .nii added nibabel's "data code ... not recognized" twice, and a 10000 x 10000 PNG Pillow's
    DecompressionBombWarning with its file path and source line (the web-app audit)."""
    jpeg = tmp_path / "scan.nii"
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(jpeg, format="JPEG")
    big = tmp_path / "big.png"
    Image.new("L", (10000, 10000)).save(big)
    r = subprocess.run([sys.executable, "-m", "tumorlens", "predict", "--format", "csv", str(jpeg), str(big)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "data code" not in r.stderr and "Warning" not in r.stderr and "warn(" not in r.stderr, r.stderr
    assert "scan.nii: corrupt or unreadable NIfTI file" in r.stdout and "big.png: image claims" in r.stdout
