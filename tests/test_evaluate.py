"""`tumorlens evaluate` on a phantom dataset: every report file the issue lists, predictions that are exactly
the Predictor's, and a self-contained report.html with the disclaimer."""
from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tumorlens.cli import main
from tumorlens.config import CLASSES, DISCLAIMER, TumorlensError
from tumorlens.data import preprocess_array, read_gray
from tumorlens.predict import Predictor
from tumorlens.synthetic import make_dataset

FILES = ["metrics.json", "predictions.csv", "classification_report.txt", "classification_report.json",
         "confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "history.png", "reliability.png",
         "risk_coverage.png", "gradcam_gallery.png", "report.html"]


@pytest.fixture(scope="module")
def evaluated(ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    data = make_dataset(root / "data", n_per_class=10, size=128, seed=3, split=True)
    assert main(["split", str(data), "--strategy", "official", "--out", str(root / "split.csv")]) == 0
    assert main(["evaluate", str(data), "--split", str(root / "split.csv"), "--model", str(ckpt),
                 "--out", str(root / "out")]) == 0
    return data, root / "out"


def test_evaluate_writes_every_report_file(evaluated):
    _, out = evaluated
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in (p for p in FILES if p.endswith(".png")):
        assert (out / png).read_bytes().startswith(b"\x89PNG"), png
    assert (out / "classification_report.txt").read_text().startswith(DISCLAIMER)


def test_metrics_hold_the_summary_the_report_promises(evaluated, ckpt):
    data, out = evaluated
    m = json.loads((out / "metrics.json").read_text())
    n = m["n"]
    assert n == m["data"]["n"] == len(list((data / "Testing").rglob("*.png"))) > 4 and m["data"]["side"] == "test"
    lo, hi = m["accuracy_ci"]
    assert 0 <= lo <= m["accuracy"] <= hi <= 1
    assert {"macro", "micro"} <= set(m["roc_auc"]) and "macro avg" in m["report"]
    assert np.asarray(m["confusion_matrix"]).sum() == n
    assert {"ece_before", "ece_after", "brier_before", "brier_after", "temperature"} <= set(m["calibration"])
    assert m["selective"]["at_90"]["target_coverage"] == 0.9 and m["inference"] == {"flip_average": True}
    assert m["model"]["sha256"] == Predictor(ckpt).ckpt.sha256


def test_predictions_are_the_predictors_on_the_same_files(evaluated, ckpt):
    data, out = evaluated
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "true", "pred", "p_glioma", "p_meningioma", "p_notumor", "p_pituitary",
                             "status"]
    pr = Predictor(ckpt, backend="torch")
    x = np.stack([preprocess_array(read_gray(data / r["path"], draft=4 * pr.pre.size), pr.pre)[0] for r in rows])
    want = pr.probabilities(x)
    got = np.array([[float(r[f"p_{c}"]) for c in pr.classes] for r in rows])
    assert np.allclose(got, want, atol=1e-5)
    assert [r["pred"] for r in rows] == [pr.classes[k] for k in want.argmax(1)]
    # the status column is what `tumorlens predict` answers for each file (refusal and abstention on)
    recs = {r.path: r for r in Predictor(ckpt).predict_paths([str(data / r["path"]) for r in rows])}
    assert [r["status"] for r in rows] == [recs[str(data / r["path"])].status for r in rows]


def test_metrics_say_what_predict_answers_for_the_same_files(evaluated):
    """The headline metrics score every slice with refusal and abstention off; "deployed" is the product's view
    of the same files (a helper's audit: nothing said that refused and uncertain slices were counted)."""
    data, out = evaluated
    m = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dep = m["deployed"]
    statuses = [r["status"] for r in rows]
    assert dep["n"] == m["n"] == len(rows)
    assert (dep["answered"], dep["uncertain"], dep["rejected"], dep["error"]) == tuple(
        statuses.count(s) for s in ("ok", "uncertain", "rejected", "error"))
    assert dep["rejected_by_feature_distance"] + dep["rejected_by_image_checks"] == dep["rejected"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert dep["coverage"] == pytest.approx(len(ok) / len(rows))
    if ok:
        assert dep["accuracy_answered"] == pytest.approx(np.mean([r["pred"] == r["true"] for r in ok]))
    tumours = [r for r in ok if r["true"] != "notumor"]
    assert dep["tumours_answered"] == len(tumours)
    assert dep["tumours_answered_notumor"] == sum(r["pred"] == "notumor" for r in tumours)
    assert m["selective"]["at_threshold"]["n_answered"] == sum(
        max(float(r[f"p_{c}"]) for c in CLASSES) >= m["selective"]["at_threshold"]["threshold"] for r in rows)
    html = (out / "report.html").read_text()
    assert "As deployed" in html and "every test slice, refusal off" in html


def test_report_html_is_self_contained_and_says_research_use_only(evaluated):
    _, out = evaluated
    html = (out / "report.html").read_text()
    assert DISCLAIMER in html and "mirror" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == sum(p.endswith(".png") for p in FILES)
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # opens offline


def test_test_images_the_model_was_trained_on_are_warned_about_and_recorded(evaluated, ckpt, tmp_path, caplog):
    import logging

    from tumorlens.checkpoint import load_checkpoint, save_checkpoint
    from tumorlens.split import read_split

    data, plain = evaluated
    assert json.loads((plain / "metrics.json").read_text())["overlap_with_training"] is None  # no manifest: unknown
    assert 'role="alert"' not in (plain / "report.html").read_text()
    split = data.parent / "split.csv"
    rows = read_split(split)
    test = [r for r in rows if r.split == "test"]
    # a model whose manifest had two of these test images in its train part and one in its val part
    manifest = [[r.path, r.label, {0: "train", 1: "train", 2: "val"}.get(i, "test"), r.group, r.sha256]
                for i, r in enumerate(test)]
    ck = load_checkpoint(ckpt)
    leaky = save_checkpoint(tmp_path / "leaky.safetensors", ck.model, ck.config,
                            {**ck.meta, "split": {"strategy": "file", "manifest": manifest}})
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(data), "--split", str(split), "--model", str(leaky), "--out",
                     str(tmp_path / "ev")]) == 0
    msg = f"3 of {len(test)} test images were in this model's training/validation data: the scores are inflated"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [msg]
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["overlap_with_training"] == {"n": 3, "of": len(test)} and m["n"] == len(test)
    page = (tmp_path / "ev" / "report.html").read_text()
    assert f'<div class="warning" role="alert">Warning: {html.escape(msg)}</div>' in page


def _sub_split(data, tmp_path, keep):
    """The fixture's split.csv with only the test rows for which `keep(label)` holds."""
    rows = list(csv.DictReader(open(data.parent / "split.csv", newline="")))
    f = tmp_path / "sub.csv"
    with open(f, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["split"] != "test" or keep(r["label"]))
    return f


def test_evaluate_on_a_test_part_of_one_class_prints_na_for_macro_auc_instead_of_a_traceback(
        evaluated, ckpt, tmp_path, capsys):
    """Macro AUC is None when the test part holds one class; the terminal summary crashed formatting it."""
    data, _ = evaluated
    split = _sub_split(data, tmp_path, lambda label: label == "glioma")
    assert main(["evaluate", str(data), "--split", str(split), "--model", str(ckpt), "--out",
                 str(tmp_path / "ev")]) == 0
    io = capsys.readouterr()
    assert "Traceback" not in io.err and io.out.startswith(DISCLAIMER)
    assert "macro AUC n/a (the test part holds only glioma: ROC needs two classes)" in io.out
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["roc_auc"]["macro"] is None
    assert m["classes_absent_from_test"] == ["meningioma", "notumor", "pituitary"]
    assert "macro AUC is n/a" in (tmp_path / "ev" / "report.html").read_text()
    for name in FILES:
        assert (tmp_path / "ev" / name).is_file(), name


def test_a_class_absent_from_the_test_part_is_named_in_the_log_metrics_json_report_and_terminal(
        evaluated, ckpt, tmp_path, capsys, caplog):
    """Its all-zero row pulls macro-F1 down while balanced accuracy leaves it out; the reader must be told."""
    import logging

    data, _ = evaluated
    split = _sub_split(data, tmp_path, lambda label: label != "pituitary")
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(data), "--split", str(split), "--model", str(ckpt), "--out",
                     str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["classes_absent_from_test"] == ["pituitary"] and m["report"]["pituitary"]["support"] == 0
    assert m["roc_auc"]["macro"] is not None  # three classes are left: AUC is defined, so not blamed
    msg = ("no test images of pituitary (support 0): the macro averages (precision, recall, F1) count that class "
           f"as 0 (macro-F1 {m['macro_f1']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}); read balanced "
           "accuracy and the per-class rows instead")
    assert msg in [r.getMessage() for r in caplog.records if r.name == "tumorlens.evaluate"]
    assert f"warning: {msg}\n" in capsys.readouterr().out
    page = (tmp_path / "ev" / "report.html").read_text()
    assert f'<div class="warning" role="alert">Warning: {html.escape(msg)}</div>' in page
    # with every class present nothing is listed or warned about
    _, plain = evaluated
    assert json.loads((plain / "metrics.json").read_text())["classes_absent_from_test"] == []


def test_gallery_caption_names_the_heatmap_method_actually_used_not_grad_cam(evaluated, ckpt):
    from tumorlens.explain import default_method

    _, out = evaluated
    page = (out / "report.html").read_text()
    method = default_method(Predictor(ckpt).model)
    assert method != "gradcam"  # else this test could not tell the old caption from the new
    assert f"<figcaption>Heatmap gallery (method: {method}, the default for this model; see explain.py)" in page
    assert "Grad-CAM gallery" not in page


def test_json_outputs_carry_the_disclaimer_and_still_read_back(evaluated):
    from tumorlens.metrics import format_report
    from tumorlens.report import metrics_html

    _, out = evaluated
    m = json.loads((out / "metrics.json").read_text())
    rep = json.loads((out / "classification_report.json").read_text())
    assert m["disclaimer"] == DISCLAIMER and rep["disclaimer"] == DISCLAIMER
    assert list(m)[0] == "disclaimer"  # the first thing a person opening the file sees
    assert "glioma" in format_report(rep) and DISCLAIMER not in format_report(rep)
    assert DISCLAIMER not in metrics_html(m).split("<details>")[0]  # not repeated as a headline "metric"
    with open(out / "predictions.csv", newline="") as f:
        assert next(csv.reader(f))[0] == "path"  # the CSV stays a plain table


def test_an_interrupted_rerun_leaves_the_earlier_report_whole_and_no_stage_folder(evaluated, ckpt, tmp_path,
                                                                                  monkeypatch):
    """Each file was written atomically but the folder was not: Ctrl-C after predictions.csv left a new
    metrics.json beside the old report.html. Now the files land together, after the last one is written."""
    import shutil

    from tumorlens import plots

    data, out = evaluated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = {f: (copy / f).read_bytes() for f in FILES}

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_roc", interrupted)
    split = _sub_split(data, tmp_path, lambda label: label == "glioma")
    with pytest.raises(KeyboardInterrupt):
        from tumorlens.evaluate import evaluate
        from tumorlens.split import read_split

        evaluate(data, read_split(split), copy, model=ckpt)
    assert {f: (copy / f).read_bytes() for f in FILES} == before
    assert sorted(p.name for p in copy.iterdir()) == sorted(FILES)  # no hidden stage left behind


def test_a_rerun_replaces_every_file_of_the_earlier_one_and_keeps_other_files(evaluated, ckpt, tmp_path):
    import shutil

    data, out = evaluated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "notes.txt").write_text("mine")
    split = _sub_split(data, tmp_path, lambda label: label == "glioma")
    assert main(["evaluate", str(data), "--split", str(split), "--model", str(ckpt), "--out", str(copy)]) == 0
    m = json.loads((copy / "metrics.json").read_text())
    assert m["data"]["n"] == sum(1 for r in csv.DictReader(open(split)) if r["split"] == "test")
    assert (copy / "notes.txt").read_text() == "mine"
    assert not [p for p in copy.iterdir() if p.name.startswith(".")]


def test_an_out_that_is_a_file_or_a_split_without_test_images_fails_before_any_work(evaluated, ckpt, tmp_path,
                                                                                    capsys):
    data, _ = evaluated
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["evaluate", str(data), "--split", str(data.parent / "split.csv"), "--model", str(ckpt),
                 "--out", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "taken" in err and "must be a folder" in err and len(err.splitlines()) == 1
    empty = _sub_split(data, tmp_path, lambda label: False)
    assert main(["evaluate", str(data), "--split", str(empty), "--model", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(empty) in err and "no test images" in err


def test_score_takes_labels_as_a_list_as_well_as_an_array(ckpt):
    """`y == i` on a list is never true: every class was reported absent from the test part."""
    from predict_helpers import tiny_data
    from tumorlens.evaluate import score

    x, y = tiny_data(3, seed=5)
    pr = Predictor(ckpt)
    as_list = score(pr, x, y.tolist(), [f"i{i}" for i in range(len(y))]).metrics
    as_array = score(pr, x, y, [f"i{i}" for i in range(len(y))]).metrics
    assert as_list["classes_absent_from_test"] == as_array["classes_absent_from_test"] == []
    assert as_list["accuracy"] == as_array["accuracy"]


def test_a_stage_left_by_a_killed_run_is_removed_by_the_next_but_a_running_ones_stays(tmp_path):
    """An evaluate killed with SIGKILL runs no exit handler: its hidden stage stayed in the report folder for
    good (a user audit found them piling up). The next run removes stages whose process is gone."""
    import subprocess
    import sys

    from tumorlens.fileio import StagedFolder

    out = tmp_path / "report"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = out / ".tumorlens-killed"
    killed.mkdir()
    (killed / ".pid").write_text(dead.stdout.strip())  # a process that has ended
    (killed / "metrics.json").write_text("{}")
    old = out / ".tumorlens-old"  # a stage of a tumorlens before pid files
    old.mkdir()
    alive = out / ".tumorlens-alive"
    alive.mkdir()
    (alive / ".pid").write_text(str(os.getpid()))  # this process: still running
    with StagedFolder(out, ["metrics.json"]) as st:
        (st.stage / "metrics.json").write_text("{}")
        st.publish()
    assert sorted(p.name for p in out.iterdir()) == [".tumorlens-alive", "metrics.json"]


def test_the_terminal_names_the_model_that_was_scored(evaluated, ckpt, tmp_path, capsys):
    data, out = evaluated
    split = out.parent / "split.csv"
    capsys.readouterr()
    assert main(["evaluate", str(data), "--split", str(split), "--model", str(ckpt), "--out", str(tmp_path / "o")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("model: "))
    assert Path(line.split()[1].rstrip(",")).resolve() == Path(ckpt).resolve() and "sha256" in line


def test_the_report_confusion_table_shows_a_small_row_share_with_one_decimal():
    """1 of 330 showed as "1 (0%)" (a helper's audit)."""
    from tumorlens.report import metrics_html

    page = metrics_html({"class_names": ["a", "b"], "confusion_matrix": [[329, 1], [0, 2]],
                         "confusion_matrix_normalized": [[329 / 330, 1 / 330], [0.0, 1.0]]})
    assert "1 (0.3%)" in page and "329 (99.7%)" in page and "(0%)" not in page


def test_score_refuses_fewer_paths_than_images():
    """predictions.csv zipped paths with rows and silently lost the rows without a path (a library audit)."""
    from tumorlens.evaluate import score
    from tumorlens.predict import Predictor

    x = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    with pytest.raises(TumorlensError, match="one label and one path per image, got 4 images, 4 labels and 3 paths"):
        score(Predictor(), x, np.array([0, 1, 2, 3]), ["a", "b", "c"])


def test_a_model_whose_classes_are_not_the_datasets_in_order_is_refused_before_decoding(tmp_path):
    """A checkpoint naming (meningioma, glioma, ...) was scored with its columns read in the dataset's order:
    a report of wrong numbers, exit 0 (an audit)."""
    import json as _json

    from safetensors.torch import load_file, save_file

    from tumorlens.checkpoint import BUNDLED, META_KEY, read_metadata
    from tumorlens.evaluate import evaluate

    doc = read_metadata(BUNDLED)
    doc["classes"] = ["meningioma", "glioma", "notumor", "pituitary"]
    swapped = tmp_path / "swapped.safetensors"
    save_file(load_file(str(BUNDLED)), str(swapped), metadata={META_KEY: _json.dumps(doc)})
    with pytest.raises(TumorlensError, match=r"its classes \(meningioma, glioma, notumor, pituitary\) are not the "
                                             r"dataset's \(glioma, meningioma, notumor, pituitary, in this order\)"):
        evaluate(tmp_path / "no-data-needed", [], tmp_path / "out", model=swapped)
