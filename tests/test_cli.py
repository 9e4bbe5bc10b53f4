"""`tumorlens info`: what a checkpoint is, its split manifest written out, and one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

from tumorlens.checkpoint import BUNDLED, file_sha256, load_checkpoint, read_metadata
from tumorlens.cli import main
from tumorlens.config import DISCLAIMER, ModelConfig, TrainConfig, TumorlensError
from tumorlens.split import read_split
from tumorlens.synthetic import make_arrays
from tumorlens.train import SplitData, train


def test_info_describes_the_bundled_model_and_writes_the_split_it_was_trained_on(tmp_path, capsys):
    out = tmp_path / "split.csv"
    assert main(["info", "--split-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == DISCLAIMER
    assert file_sha256(BUNDLED) in text
    meta = read_metadata(BUNDLED)
    cfg = meta["config"]
    assert f"patience {cfg['patience']}" in text and "mixup off" in text
    assert f"{cfg['turn']:.0%} turned by any angle" in text and "averaged over the slice and its left-right mirror" in text
    # the augmentations that guard against the set's shortcuts are part of what the model is (README)
    assert (f"grey-level curves on {cfg['contrast']:.0%}, skull-stripped {cfg['strip']:.0%}, "
            f"T2-like tumour rendering on {cfg['t2']:.0%}, seed") in text
    ab, ref = meta["abstention"], meta["refusal"]
    assert f"`uncertain` below confidence {ab['threshold']:.3f}" in text
    assert (f"feature distance above {ref['ood']['threshold']:.4g} (fitted on {ref['n_train']} train and "
            f"{ref['n_val']} val images; {ref['excluded']['train']} + {ref['excluded']['val']} CT slices") in text
    rows = read_split(out)
    assert len(load_checkpoint(BUNDLED).split_rows("test")) == sum(r.split == "test" for r in rows) > 0
    assert [[r.path, r.label, r.split] for r in rows] == [m[:3] for m in meta["split"]["manifest"]]
    assert {r.split for r in rows} == {"train", "val", "test"}


def test_info_on_a_checkpoint_without_a_manifest_or_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    x, y, _ = make_arrays(2, size=64, seed=0)
    d = SplitData(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y), [])
    cfg = TrainConfig(epochs=1, batch_size=8, threads=1, seg_weight=0.0,
                      model=ModelConfig(channels=(8, 8, 8, 8), lstm_hidden=8, dense=8))
    ckpt = train(cfg, d, SplitData(d.x[:0], d.y[:0], []), tmp_path / "run")  # no meta: no split manifest
    assert main(["info", "--model", str(ckpt), "--split-out", str(tmp_path / "s.csv")]) == 2
    io = capsys.readouterr()
    assert io.err.strip() == f"error: {ckpt}: checkpoint has no split manifest"
    assert "abstention   none stored" in io.out and "refusal      image checks only" in io.out  # no val part
    with pytest.raises(TumorlensError, match="checkpoint has no split manifest"):
        load_checkpoint(ckpt).split_rows("test")  # what the benchmark scripts read
    assert not (tmp_path / "s.csv").exists()
    assert main(["info", "--model", str(tmp_path / "nothere.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothere.safetensors" in err


def test_guarded_turns_errors_and_interrupts_into_exit_codes_without_a_traceback(capsys):
    from tumorlens.cli import guarded

    def bad():
        raise TumorlensError("scan.dcm: truncated")

    def interrupted():
        raise KeyboardInterrupt

    assert guarded(bad) == 2 and capsys.readouterr().err == "error: scan.dcm: truncated\n"
    assert guarded(interrupted) == 130 and capsys.readouterr().err == "interrupted\n"
    assert guarded(lambda: None) == 0 and guarded(lambda: 3) == 3

    def out_is_a_file():
        raise FileExistsError(17, "File exists", "report")

    assert guarded(out_is_a_file) == 2 and capsys.readouterr().err == "error: report: File exists\n"


def test_an_out_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("not a folder")
    assert main(["demo", "--out", str(f)]) == 2
    assert capsys.readouterr().err == f"error: {f}: --out must be a folder, and a file of that name exists\n"


def test_a_benchmark_script_with_a_missing_model_says_so_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py"
    r = subprocess.run([sys.executable, str(script), "--model", str(tmp_path / "nope.safetensors"),
                        "--out", str(tmp_path / "r.md")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nope.safetensors'}: checkpoint not found"
    assert not (tmp_path / "r.md").exists()


def test_a_config_file_is_checked_setting_by_setting_and_errors_name_the_file(tmp_path):
    import argparse
    import json

    from tumorlens.cli import _resolve_config

    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"epochs": 7, "model": {"lstm_hidden": 32}, "preprocess": {"size": 96}}))
    cfg = _resolve_config(argparse.Namespace(config=str(f), set=["lr=0.001"]))
    assert (cfg.epochs, cfg.model.lstm_hidden, cfg.preprocess.size, cfg.lr) == (7, 32, 96, 0.001)
    assert cfg.batch_size == TrainConfig().batch_size  # unnamed settings keep their defaults
    # a run's own resolved config.json reads back as the same recipe
    (tmp_path / "run.json").write_text(json.dumps(cfg.to_dict()))
    assert _resolve_config(argparse.Namespace(config=str(tmp_path / "run.json"), set=None)) == cfg
    for content, message in ((json.dumps({"epochs": "abc"}), 'epochs="abc": expects a whole number'),
                             (json.dumps({"model": {"depth": 3}}), "unknown setting 'model.depth'"),
                             (json.dumps([1, 2]), "expects a JSON object of settings"),
                             ("{not json", "not valid JSON")):
        f.write_text(content)
        with pytest.raises(TumorlensError) as e:
            _resolve_config(argparse.Namespace(config=str(f), set=None))
        assert str(e.value).startswith(f"{f}: ") and message in str(e.value)


def test_a_config_file_not_in_utf8_is_one_line_naming_it_and_one_with_a_byte_order_mark_is_read(tmp_path, capsys):
    import argparse
    import json

    from tumorlens.cli import _resolve_config

    f = tmp_path / "cfg.json"
    f.write_bytes(bytes(range(256)))
    assert main(["train", str(tmp_path), "--strategy", "clean", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: {f}: not a UTF-8 text file\n"
    f.write_text(json.dumps({"epochs": 7}), encoding="utf-8-sig")  # as Windows Notepad saves "UTF-8 with BOM"
    assert _resolve_config(argparse.Namespace(config=str(f), set=None)).epochs == 7


def test_evaluate_with_a_utf16_split_is_one_line_naming_the_file(tmp_path, capsys):
    s = tmp_path / "s.csv"
    s.write_bytes("path,label,split,group,sha256\nglioma/a.png,glioma,test,g,x\n".encode("utf-16"))
    (tmp_path / "data").mkdir()
    assert main(["evaluate", str(tmp_path / "data"), "--split", str(s), "--out", str(tmp_path / "ev")]) == 2
    assert capsys.readouterr().err == f"error: {s}: not a UTF-8 text file\n"


def test_a_write_that_fails_names_the_users_path_not_a_temporary_file(tmp_path, capsys, monkeypatch):
    import tempfile

    folder = tmp_path / "taken"
    folder.mkdir()
    assert main(["info", "--split-out", str(folder)]) == 2
    assert capsys.readouterr().err == f"error: {folder}: is a folder\n"

    def denied(dir, prefix, suffix):  # what mkstemp raises in a folder we may not write to, such as /sys
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}x1y2z3{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    target = tmp_path / "split.csv"
    assert main(["info", "--split-out", str(target)]) == 2
    assert capsys.readouterr().err == f"error: {target}: cannot write (Permission denied)\n"
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))


def test_train_cli_writes_a_self_describing_run_says_research_use_only_and_refuses_to_overwrite(tmp_path, capsys):
    from tumorlens.checkpoint import read_metadata
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=10, size=96, seed=5)
    run = tmp_path / "run"
    args = ["train", str(data), "--strategy", "stratified", "--out", str(run), "--set", "epochs=2",
            "--set", "threads=1", "--set", "batch_size=16"]
    assert main(args) == 0
    # the first line, before the notes on the data and the mask guidance (it came after them)
    assert capsys.readouterr().err.splitlines()[0] == DISCLAIMER
    for name in ("model.safetensors", "history.csv", "config.json", "split.csv"):
        assert (run / name).is_file(), name
    assert not (run / "state.pt").exists()
    meta = read_metadata(run / "model.safetensors")
    assert meta["config"]["epochs"] == 2 and meta["config"]["flip_average"] is True
    assert meta["mask_guidance"]["used"]  # the phantoms' own masks guide the gate
    assert meta["calibration"]["flip_average"] is True and meta["calibration"]["fitted_on"] == "val"
    assert [[r.path, r.label, r.split] for r in read_split(run / "split.csv")] == \
        [m[:3] for m in meta["split"]["manifest"]]
    capsys.readouterr()
    assert main(args) == 2  # a finished run is never overwritten, and that is said before any work
    assert capsys.readouterr().err.strip() == f"error: {run}: already holds a finished run; choose another --out"
    assert main(args + ["--resume"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {run}: already holds a finished run; there is nothing to "
                                                "resume; choose another --out")


def test_train_leaves_images_listed_as_not_mri_out_of_the_refusal_fit(tmp_path, capsys):
    from tumorlens.checkpoint import read_metadata
    from tumorlens.data import file_sha256
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=25, size=64, seed=6)
    run = tmp_path / "run"
    split = tmp_path / "split.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--out", str(split)]) == 0
    rows = read_split(split)
    listed = [r.path for r in rows if r.split == "train"][:3] + [r.path for r in rows if r.split == "val"][:1]
    csv_path = tmp_path / "not_mri.csv"
    csv_path.write_text("path,sha256\n" + "".join(f"{p},{file_sha256(data / p)}\n" for p in listed))
    args = ["train", str(data), "--split", str(split), "--out", str(run), "--set", "epochs=1", "--set", "threads=1",
            "--set", "batch_size=16", "--not-mri", str(csv_path)]
    assert main(args) == 0
    assert "fitted without the 3 train and 1 val images listed in not_mri.csv" in capsys.readouterr().err
    ref = read_metadata(run / "model.safetensors")["refusal"]
    n_train, n_val = sum(r.split == "train" for r in rows), sum(r.split == "val" for r in rows)
    assert (ref["n_train"], ref["n_val"]) == (n_train - 3, n_val - 1)
    assert ref["excluded"] == {"what": "images listed as not MRI", "list": "not_mri.csv", "train": 3, "val": 1}
    # stopped during the fit without the listed images: the run must stay resumable, not look finished (the fit
    # came after the checkpoint was written, and an interrupted one left a checkpoint fitted on all; an audit)
    import tumorlens.refusal as refusal

    real = refusal.answer_rules

    def stopped_in_the_fit_without_them(ck, x_train, *a, **k):
        if len(x_train) == n_train - 3:
            raise KeyboardInterrupt
        return real(ck, x_train, *a, **k)

    run2 = tmp_path / "run2"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(refusal, "answer_rules", stopped_in_the_fit_without_them)
        assert main(args[:5] + [str(run2)] + args[6:]) == 130  # args with --out run2
    assert not (run2 / "model.safetensors").exists() and (run2 / "state.pt").exists()
    assert main(args[:5] + [str(run2)] + args[6:] + ["--resume"]) == 0
    assert read_metadata(run2 / "model.safetensors")["refusal"]["excluded"]["train"] == 3
    capsys.readouterr()
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    assert main(["train", str(data), "--split", str(split), "--out", str(tmp_path / "r2"), "--not-mri",
                 str(tmp_path / "bad.csv")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'bad.csv'}: needs a header row with a sha256 "
                                                "or a path column")
    assert main(["train", str(data), "--split", str(split), "--out", str(tmp_path / "r3"), "--not-mri",
                 str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: cannot read" in capsys.readouterr().err


def test_train_with_a_learning_rate_out_of_range_is_refused_before_any_work(tmp_path, capsys):
    # the README promises each value is range-checked; lr=1e9 used to train to nan and stop mid-run
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "no-data"), "--strategy", "stratified", "--out", str(run),
                 "--set", "lr=1e9"]) == 2
    assert capsys.readouterr().err == "error: lr must be in (0, 1], got 1000000000.0\n"
    assert not run.exists()


def test_demo_runs_the_whole_pipeline_and_says_research_use_only(tmp_path, capsys, monkeypatch):
    """The README's main job, end to end on a few phantoms: the real demo trains 800 with augmentation for 30
    epochs (about a minute); without augmentation a few epochs pass its own accuracy check."""
    import tumorlens.demo as demo

    monkeypatch.setattr(demo, "DEMO_CONFIG", demo.DEMO_CONFIG.with_overrides(["augment=false", "warmup_epochs=0", "batch_size=16"]))
    out = tmp_path / "demo"
    # a run interrupted while it wrote the phantoms: one class folder, no manifest. The rerun trained on the
    # partial set and said "demo finished" (a helper's audit); now it generates the set again
    partial = out / "phantoms" / "Training" / "glioma"
    partial.mkdir(parents=True)
    (partial / "glioma_0.png").write_bytes(b"\x89PNG truncated")
    assert main(["demo", "--out", str(out), "--n-per-class", "32", "--epochs", "30"]) == 0
    cap = capsys.readouterr()
    assert DISCLAIMER in cap.err and DISCLAIMER in cap.out and "report.html" in cap.out
    assert "is incomplete (an interrupted run): generating it again" in cap.err
    assert (tmp_path / "demo" / "phantoms_manifest.csv").is_file()
    assert sorted(p.name for p in (out / "phantoms" / "Training").iterdir()) == [
        "glioma", "meningioma", "notumor", "pituitary"]
    for f in ("report/report.html", "report/metrics.json", "report/gradcam_gallery.png", "run/model.safetensors",
              "split.csv", "audit/duplicates.csv"):
        assert (out / f).is_file(), f
    assert DISCLAIMER in (out / "report" / "report.html").read_text()
    assert json.loads((out / "summary.json").read_text())["disclaimer"] == DISCLAIMER  # it had none
    # the abstention's note that the tiny demo model misses 99.5% on its answered cases is no WARNING (it read
    # as a failure of the demo)
    assert "WARNING" not in cap.err and "below the" not in cap.err


def test_every_subcommand_help_shows_the_research_use_disclaimer(capsys):
    """evaluate, info and model-card --help said nothing of research use, unlike the top-level help."""
    from tumorlens.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"evaluate", "info", "model-card"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        assert DISCLAIMER in text, name
    assert "score a model on the test part of a split" in " ".join(sub.choices["evaluate"].format_help().split())


def test_the_evaluate_summary_prints_na_with_a_reason_for_every_undefined_metric(capsys):
    from tumorlens.cli import _print_metrics
    from tumorlens.metrics import classification_report

    report = classification_report([0, 0], [0, 1], ["glioma", "meningioma"])
    m = {"n": 2, "accuracy": 0.5, "accuracy_ci": [0.1, 0.9], "balanced_accuracy": None, "macro_f1": None,
         "roc_auc": {"macro": None}, "report": report, "classes_absent_from_test": ["meningioma"],
         "calibration": {"ece_before": None, "ece_after": 0.1, "temperature": 1.0}}
    _print_metrics(m)
    out = capsys.readouterr().out
    assert out.startswith(DISCLAIMER)
    assert "balanced accuracy n/a (not defined for this test set)" in out and "macro-F1 n/a (" in out
    assert "macro AUC n/a (the test part holds only glioma: ROC needs two classes)" in out
    assert "ECE n/a (not defined for this test set) -> 0.1000" in out
    assert "warning: no test images of meningioma (support 0)" in out


def test_the_evaluate_summary_prints_the_miss_rate_and_selective_accuracy(capsys):
    from tumorlens.cli import _print_metrics
    from tumorlens.metrics import classification_report

    m = {"n": 4, "accuracy": 0.75, "accuracy_ci": [0.3, 0.95], "report": classification_report([0, 1], [0, 1],
                                                                                                ["glioma", "notumor"]),
         "miss_rate": {"negative_class": "notumor", "overall": {"n": 40, "count": 2, "rate": 0.05,
                                                                "ci": [0.0138, 0.165]}},
         "selective": {"at_90": {"coverage": 0.9, "accuracy": 0.98},
                       "at_threshold": {"threshold": 0.7712, "coverage": 0.923, "accuracy": None}}}
    _print_metrics(m)
    out = capsys.readouterr().out
    assert "tumours called notumor: 2 of 40 (5.0%, 95% CI 1.4-16.5%)" in out
    assert ("selective accuracy 0.9800 on the 90.0% most confident; at the model's abstention threshold 0.771: "
            "92.3% answered, accuracy n/a (not defined for this test set)") in out


def test_the_evaluate_summary_says_the_scores_leave_refusal_out_and_prints_what_predict_answers(capsys):
    from tumorlens.cli import _print_metrics
    from tumorlens.metrics import classification_report

    m = {"n": 1341, "accuracy": 0.94, "accuracy_ci": [0.93, 0.95],
         "report": classification_report([0, 1], [0, 1], ["glioma", "notumor"]),
         "deployed": {"n": 1341, "answered": 1221, "uncertain": 99, "rejected": 21, "rejected_by_feature_distance": 19,
                      "rejected_by_image_checks": 2, "error": 0, "coverage": 1221 / 1341,
                      "accuracy_answered": 0.9713, "tumours_answered": 860, "tumours_answered_notumor": 8}}
    _print_metrics(m)
    out = capsys.readouterr().out
    assert "every test slice scored from the model's probabilities (refusal and abstention off" in out
    assert ("as deployed (tumorlens predict on these files, refusal and abstention on): 1221 answered (91.1%), "
            "accuracy 0.9713; 99 uncertain; 21 refused (19 by the feature checks, 2 by the image checks); tumour "
            "slices answered notumor: 8 of 860") in out


def test_info_shows_na_for_a_stored_test_macro_auc_that_is_null(ckpt, tmp_path, capsys):
    """A checkpoint evaluated on a one-class test part stores macro AUC as null; `info` crashed on it."""
    from tumorlens.checkpoint import save_checkpoint

    ck = load_checkpoint(ckpt)
    tm = {"n": 3, "accuracy": 1.0, "accuracy_ci": [0.4, 1.0], "macro_f1": 0.25, "roc_auc": {"macro": None},
          "report": {"glioma": {"support": 3}, "notumor": {"support": 0}}}
    path = save_checkpoint(tmp_path / "m.safetensors", ck.model, ck.config, {**ck.meta, "test_metrics": tm})
    assert main(["info", "--model", str(path)]) == 0
    assert ("macro AUC n/a (the test part holds only glioma: ROC needs two classes), n = 3"
            in capsys.readouterr().out)


def test_a_single_file_output_that_ends_with_a_slash_is_refused_not_written_as_a_file(tmp_path, capsys):
    target = str(tmp_path / "reports") + "/"
    assert main(["model-card", "--out", target]) == 2
    assert capsys.readouterr().err == f"error: {target}: --out names a folder (it ends with a slash); give a file name\n"
    assert main(["info", "--split-out", target]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == f"error: {target}: --split-out names a folder (it ends with a slash); give a file name\n"
    assert main(["split", str(tmp_path), "--strategy", "stratified", "--out", target]) == 2
    assert "--out names a folder" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_a_training_terminated_after_an_epoch_exits_143_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    """SIGTERM after the first epoch gave 130 and "interrupted" (during the first, 143: an audit)."""
    import signal

    import tumorlens.train as train_mod
    from tumorlens.cli import Terminated
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=10, size=64, seed=5)

    def kill_after_the_epoch(history, path):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(train_mod, "_write_history", kill_after_the_epoch)  # the epoch's state is saved first
    run = tmp_path / "run"
    assert main(["train", str(data), "--strategy", "stratified", "--out", str(run), "--set", "epochs=2",
                 "--set", "threads=1", "--set", "batch_size=16"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"terminated (SIGTERM); continue with: tumorlens train ... --out {run} --resume")
    assert (run / "state.pt").exists()


def test_settings_that_cannot_work_are_refused_before_the_dataset_is_decoded(tmp_path, capsys, monkeypatch):
    """A changed setting on --resume and split's --test-size 0 were said only after the (long) decoding."""
    import tumorlens.cli as cli
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=10, size=64, seed=5)
    run = tmp_path / "run"
    args = ["train", str(data), "--strategy", "stratified", "--out", str(run), "--set", "epochs=2",
            "--set", "threads=1", "--set", "batch_size=16"]
    import tumorlens.train as train_mod

    real = train_mod._write_history

    def stop(history, path):
        real(history, path)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "_write_history", stop)
        assert main(args) == 130

    def no_decoding(*a, **k):
        raise AssertionError("the dataset was decoded")

    monkeypatch.setattr(cli, "_load", no_decoding)
    capsys.readouterr()
    assert main(args + ["--set", "lr=0.01", "--resume"]) == 2
    assert "--resume needs the same configuration as the interrupted run; differs: lr 0.003 -> 0.01" in \
        capsys.readouterr().err
    assert main(["split", str(data), "--strategy", "stratified", "--test-size", "0", "--out",
                 str(tmp_path / "s.csv")]) == 2
    assert "need 0 < test-size < 1" in capsys.readouterr().err


def test_epoch_lines_of_a_run_without_a_val_part_say_so_instead_of_nan(tmp_path, capsys):
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=8, size=64, seed=5)
    split = tmp_path / "s.csv"
    assert main(["split", str(data), "--strategy", "stratified", "--val-size", "0", "--out", str(split)]) == 0
    assert main(["train", str(data), "--split", str(split), "--out", str(tmp_path / "run"), "--set", "epochs=1",
                 "--set", "threads=1", "--set", "batch_size=16"]) == 0
    err = capsys.readouterr().err
    assert "no val part" in err and "nan" not in err


def test_an_unreadable_file_in_a_dataset_is_named_once(tmp_path, capsys, caplog):
    """It was named in a warning and again in a "skipped" block (an audit)."""
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=6, size=64, seed=5)
    (data / "glioma" / "broken_scan.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    with caplog.at_level("WARNING"):
        assert main(["split", str(data), "--strategy", "stratified", "--out", str(tmp_path / "s.csv")]) == 0
    err = capsys.readouterr().err
    assert caplog.text.count("broken_scan.png") == 1  # the warning (on stderr in a real run)
    assert "1 of 25 files skipped as unreadable" in caplog.text and "broken_scan.png" not in err, err


def test_info_shows_the_split_table_in_splits_column_order(capsys):
    """The stored table came back with its keys sorted: test, test_fraction, train, val (an audit)."""
    assert main(["info"]) == 0
    head = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("class "))
    assert head.split() == ["class", "train", "val", "test", "test_fraction"]


def test_train_into_a_folder_under_a_file_says_which_file_before_decoding(tmp_path, capsys, monkeypatch):
    import tumorlens.cli as cli

    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(cli, "_load", lambda *a, **k: pytest.fail("the dataset was decoded"))
    (tmp_path / "data").mkdir()
    assert main(["train", str(tmp_path / "data"), "--strategy", "stratified", "--out",
                 str(tmp_path / "afile" / "run")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'afile' / 'run'}: cannot create the run folder: "
                                               f"{tmp_path / 'afile'} is a file; choose another --out")
