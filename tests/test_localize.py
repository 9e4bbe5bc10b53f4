"""Tests for `tumorlens localize`: metrics, folds, baselines, and a run on a phantom figshare-layout folder."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tumorlens.checkpoint import save_checkpoint
from tumorlens.config import DISCLAIMER, ModelConfig, Preprocess, TrainConfig, TumorlensError
from tumorlens.explain import METHODS
from tumorlens.localize import (
    BASELINES,
    localize,
    map_metrics,
    mask_info,
    otsu_threshold,
    parse_folds,
    randomized_copy,
    spearman,
    ssim,
    held_out_folds,
)
from tumorlens.model import build_model
from tumorlens.plots import PNG_MAGIC
from tumorlens.synthetic import make_phantom


TINY = ModelConfig(channels=(8, 16, 32, 32), lstm_hidden=32, dense=32, dropout=0.1)
PRE = Preprocess(size=64)


# ------------------------------------------------------------------------------------------- folds
def test_test_folds_come_from_test_rows_of_the_split_manifest():
    manifest = [
        ["Training/glioma/a.jpg", "glioma", "train", "figshare-fold-1", ""],
        ["Training/glioma/b.jpg", "glioma", "test", "figshare-fold-2", ""],
        ["Testing/glioma/c.jpg", "glioma", "test", "figshare-fold-4+figshare-fold-2", ""],
        ["Testing/notumor/d.jpg", "notumor", "test", "Testing/notumor/d.jpg", ""],
        ["Training/glioma/e.jpg", "glioma", "val", "figshare-fold-4", ""],
    ]
    folds, overlap = held_out_folds({"split": {"manifest": manifest}})
    assert folds == [2, 4]
    assert overlap == {4: 1}  # fold 4 also has a validation image: not fully held out
    assert held_out_folds({}) == ([], {})
    assert parse_folds(["2", "3,5"]) == [2, 3, 5] and parse_folds(None) is None
    with pytest.raises(TumorlensError):
        parse_folds(["two"])


# ----------------------------------------------------------------------------------------- metrics
def test_otsu_threshold_splits_a_bimodal_map():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0.2, 0.03, 500), rng.normal(0.8, 0.03, 200)]).clip(0, 1)
    assert 0.3 < otsu_threshold(v) < 0.7
    assert otsu_threshold(np.zeros(10)) == 0.0


def test_pointing_energy_iou_on_known_maps():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    mi = mask_info(mask)
    assert mi.tol == pytest.approx(3.0)
    inside = np.zeros((100, 100), np.float32)
    inside[40:60, 40:60] = 1.0
    r = map_metrics(inside, mi)
    assert r["pointing"] == 1.0 and r["energy"] == pytest.approx(1.0) and r["iou"] == pytest.approx(1.0)
    assert r["dice"] == pytest.approx(1.0)
    near = np.zeros((100, 100), np.float32)
    near[40, 62] = 1.0  # 3 px right of the mask: within the 3% tolerance
    assert map_metrics(near, mi)["pointing"] == 1.0
    far = np.zeros((100, 100), np.float32)
    far[40, 64] = 1.0
    assert map_metrics(far, mi)["pointing"] == 0.0 and map_metrics(far, mi)["energy"] == 0.0
    assert map_metrics(np.zeros((100, 100), np.float32), mi) == {"pointing": 0.0, "energy": 0.0, "iou": 0.0,
                                                                  "dice": 0.0}
    half = np.zeros((100, 100), np.float32)
    half[40:60, 40:80] = 1.0
    r = map_metrics(half, mi)
    assert r["energy"] == pytest.approx(0.5) and r["iou"] == pytest.approx(0.5) and r["dice"] == pytest.approx(2 / 3)


def test_rank_correlation_and_ssim():
    rng = np.random.default_rng(1)
    a = rng.random((3, 16, 16))
    assert np.allclose(spearman(a, a), 1) and np.allclose(spearman(a, -a), -1)
    assert np.allclose(spearman(a, a ** 3), 1)  # monotone maps rank alike
    assert np.allclose(ssim(a, a), 1) and (ssim(a, rng.random((3, 16, 16))) < 0.3).all()
    assert spearman(np.zeros((1, 4, 4)), a[:1, :4, :4])[0] == 0.0


def test_randomized_copy_changes_every_weight_but_not_the_model_or_global_rng():
    torch.manual_seed(0)
    model = build_model(TINY, 64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    rnd = randomized_copy(model, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    learned = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.LSTM))]
    # six block convs (block_convs 1, 1, 2, 2), the fine gate's seven convs, the LSTM, two dense layers
    assert len(learned) == 6 + 7 + 1 + 2
    for n in learned:
        for pn, p in model.get_submodule(n).named_parameters():
            if "weight" in pn:
                assert not torch.equal(p, rnd.get_submodule(n).get_parameter(pn)), (n, pn)
    assert not rnd.training


# ------------------------------------------------------------------------------------ a whole run
def _phantom_figshare(root: Path, n_per_class: int = 3, size: int = 128) -> Path:
    """A folder in the figshare layout: images/<i>.png, masks/<i>.png, metadata.csv (folds 1 and 2)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    i = 1
    for label in ("meningioma", "glioma", "pituitary", "notumor"):
        for j in range(n_per_class if label != "notumor" else 1):
            p = make_phantom(label, np.random.default_rng([5, i]), size)
            Image.fromarray(p.image).save(root / "images" / f"{i}.png")
            Image.fromarray(p.mask.astype(np.uint8) * 255).save(root / "masks" / f"{i}.png")
            rows.append({"index": i, "image": f"images/{i}.png", "mask": f"masks/{i}.png", "label": 1,
                         "class_name": label, "cv_fold": 1 + (j % 2) if label != "notumor" else 2})
            i += 1
    (root / "images" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # unreadable: skipped
    Image.fromarray(np.zeros((size, size), np.uint8)).save(root / "masks" / f"{i}.png")
    rows.append({"index": i, "image": f"images/{i}.png", "mask": f"masks/{i}.png", "label": 2,
                 "class_name": "glioma", "cv_fold": 2})
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained tiny model whose split manifest holds figshare fold 2 on the test side."""
    torch.manual_seed(0)
    model = build_model(TINY, 64).eval()
    manifest = [["Training/glioma/a.jpg", "glioma", "train", "figshare-fold-1", ""],
                ["Testing/glioma/b.jpg", "glioma", "test", "figshare-fold-2", ""]]
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(path, model, TrainConfig(model=TINY, preprocess=PRE),
                           meta={"split": {"manifest": manifest}})


def test_localize_writes_localization_json_with_expected_keys(ckpt, tmp_path):
    data = _phantom_figshare(tmp_path / "figshare")
    out = tmp_path / "loc"
    doc = localize(ckpt, data, out, n_examples=2)
    on_disk = json.loads((out / "localization.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert doc["disclaimer"] == DISCLAIMER
    assert {"model", "data", "settings", "groups", "results", "sanity_check", "targets", "recommended_method",
            "verdicts"} <= set(doc)
    d = doc["data"]
    assert d["folds"] == [2] and d["fold_source"].startswith("checkpoint")
    # fold 2: one meningioma, one glioma, one pituitary usable; the notumor (empty mask) and the broken file skipped
    assert d["n_images"] == 3 and d["n_skipped"] == 2
    assert any("empty mask" in s["reason"] for s in d["skipped"])
    assert set(doc["results"]) == set(METHODS) | {f"{m}@randomized" for m in METHODS} | set(BASELINES)
    for res in doc["results"].values():
        assert {"overall", "meningioma", "glioma", "pituitary"} == set(res)
        o = res["overall"]
        assert o["n"] == 3 and 0 <= o["pointing"]["rate"] <= 1
        lo, hi = o["pointing"]["ci95"]
        assert 0 <= lo <= o["pointing"]["rate"] <= hi <= 1
        for m in ("energy", "iou", "dice"):
            assert 0 <= o[m]["ci95"][0] <= o[m]["mean"] + 1e-12 and o[m]["mean"] <= o[m]["ci95"][1] + 1e-12
    g = doc["groups"]["overall"]
    assert 0 < g["mask_fraction_mean"] < 0.2 and 0 <= g["accuracy"] <= 1
    assert set(doc["sanity_check"]["methods"]) == set(METHODS)
    assert doc["recommended_method"] in METHODS
    assert set(doc["verdicts"][doc["recommended_method"]]) >= {"pointing_game_ge_target", "energy_ge_3x_mask_fraction",
                                                               "above_all_baselines", "sanity_check_passes", "all"}
    assert (out / "localization.png").read_bytes().startswith(PNG_MAGIC)
    assert len(doc["examples"]) == 2 and all((out / "examples" / e).exists() for e in doc["examples"])
    assert (out / "localization_images.csv").read_text().count("\n") >= 4


def test_localize_folds_override_and_cli(ckpt, tmp_path, capsys):
    from tumorlens.cli_explain import add_parsers

    data = _phantom_figshare(tmp_path / "figshare", n_per_class=2)
    p = argparse.ArgumentParser(prog="tumorlens")
    add_parsers(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["localize", "--model", str(ckpt), "--data", str(data), "--folds", "1", "2",
                      "--methods", "gradcam", "--out", str(tmp_path / "o")])
    assert a.func(a) == 0
    printed = capsys.readouterr().out
    assert "gradcam" in printed and "pointing game" in printed and DISCLAIMER in printed
    doc = json.loads((tmp_path / "o" / "localization.json").read_text())
    assert doc["data"]["folds"] == [1, 2] and doc["data"]["fold_source"] == "given"
    assert set(doc["results"]) == {"gradcam", "gradcam@randomized", "random", "center"}
    assert doc["data"]["n_images"] == 6


def test_localize_refuses_without_test_folds(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(TINY, 64), TrainConfig(model=TINY, preprocess=PRE))
    data = _phantom_figshare(tmp_path / "figshare", n_per_class=1)
    with pytest.raises(TumorlensError, match="pass --folds"):
        localize(path, data, tmp_path / "o")
    with pytest.raises(TumorlensError, match="no image in fold"):
        localize(path, data, tmp_path / "o", folds=[9])
    with pytest.raises(TumorlensError, match="metadata.csv"):
        localize(path, tmp_path, tmp_path / "o", folds=[1])


def test_a_mask_of_other_proportions_than_its_image_is_refused_and_one_of_another_resolution_is_resized(tmp_path):
    from PIL import Image

    from tumorlens.config import TumorlensError
    from tumorlens.localize import read_mask

    m = np.zeros((256, 256), dtype=np.uint8)
    m[100:140, 60:90] = 255
    Image.fromarray(m).save(tmp_path / "half.png")
    got = read_mask(tmp_path / "half.png", (512, 512))  # same proportions: resized
    assert got.shape == (512, 512) and got[200:280, 120:180].all() and got.sum() == 80 * 60
    Image.fromarray(m[:150]).save(tmp_path / "cut.png")  # 256 x 150: cannot be aligned with a square image
    with pytest.raises(TumorlensError, match=r"cut.png: mask is 256x150 pixels but its image 512x512"):
        read_mask(tmp_path / "cut.png", (512, 512))


def test_folds_given_by_hand_that_the_model_trained_on_are_warned_about_and_recorded(tmp_path, caplog):
    """Only folds taken from the checkpoint's split were checked: --folds 5 on the bundled model (trained on
    all of fold 5) printed 'targets met: all' without a word."""
    torch.manual_seed(0)
    manifest = [["a.jpg", "glioma", "train", "figshare-fold-1", ""], ["b.jpg", "glioma", "val", "figshare-fold-1", ""],
                ["c.jpg", "glioma", "test", "figshare-fold-2", ""]]
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(TINY, 64), TrainConfig(model=TINY, preprocess=PRE),
                           {"split": {"manifest": manifest}})
    data = _phantom_figshare(tmp_path / "figshare", n_per_class=1)
    with caplog.at_level("WARNING"):
        doc = localize(path, data, tmp_path / "o", folds=[1, 2], methods=["gradcam"])
    assert doc["data"]["folds_also_in_train_or_val"] == {"1": 2}
    assert "inflated" in caplog.text and "fold 1: 2" in caplog.text


def test_a_mask_over_most_of_its_image_is_refused_and_a_limit_below_one_is_an_error(tmp_path):
    from tumorlens.localize import read_mask

    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "white.png")
    with pytest.raises(TumorlensError, match=r"white.png: mask covers 100% of its image"):
        read_mask(tmp_path / "white.png", (64, 64))
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(TINY, 64), TrainConfig(model=TINY, preprocess=PRE))
    data = _phantom_figshare(tmp_path / "figshare", n_per_class=1)
    for bad in (0, -3):
        with pytest.raises(TumorlensError, match=f"--limit must be 1 or more images, got {bad}"):
            localize(path, data, tmp_path / "o", folds=[1], limit=bad)


def test_the_verdict_line_names_the_targets_not_met_and_explains_the_terms(ckpt, tmp_path, capsys):
    from tumorlens.cli_explain import add_parsers

    data = _phantom_figshare(tmp_path / "figshare", n_per_class=1)
    p = argparse.ArgumentParser(prog="tumorlens")
    add_parsers(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["localize", "--model", str(ckpt), "--data", str(data), "--folds", "1",
                      "--methods", "gradcam", "--out", str(tmp_path / "o")])
    assert a.func(a) == 0
    cap = capsys.readouterr()
    doc = json.loads((tmp_path / "o" / "localization.json").read_text())
    v = doc["verdicts"][doc["recommended_method"]]
    for k, ok in v.items():
        if k != "all" and not ok:
            assert "NOT met" in cap.out and k in cap.out.split("NOT met")[1]
    assert "pointing game: share of slices" in cap.out and "baselines" in cap.out
    assert "only 3 slices" in cap.err  # a handful of slices: the intervals are wide
    assert "#" not in (tmp_path / "o" / "localization_images.csv").read_text()  # no comment row for CSV readers


def test_a_rerun_into_the_same_folder_replaces_every_output_and_an_interrupted_one_leaves_it_as_it_was(
        ckpt, tmp_path, monkeypatch):
    """A second run left the first run's example overlays beside its new document; an interrupted one left a new
    CSV and plot beside the old document (an audit)."""
    import tumorlens.localize as loc

    data = _phantom_figshare(tmp_path / "figshare")
    out = tmp_path / "loc"
    localize(ckpt, data, out, folds=[1], methods=["gradcam"], n_examples=3)
    first = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = loc._plot_bars

    def stop(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(loc, "_plot_bars", stop)
    with pytest.raises(KeyboardInterrupt):
        localize(ckpt, data, out, folds=[2], methods=["gradcam"], n_examples=1)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    monkeypatch.setattr(loc, "_plot_bars", real)
    doc = localize(ckpt, data, out, folds=[2], methods=["gradcam"], n_examples=1)
    assert sorted(p.name for p in (out / "examples").iterdir()) == doc["examples"] and len(doc["examples"]) == 1


def test_localize_inputs_said_plainly_before_the_work(ckpt, tmp_path):
    """A seed of -1 ended in numpy's ValueError after the work; a row cut short in AttributeError; a fold that
    does not exist beside one that does was listed as measured; a byte-order mark hid the first column; a file
    as --out failed only at the end (an audit)."""
    data = _phantom_figshare(tmp_path / "figshare")
    with pytest.raises(TumorlensError, match="seed"):
        localize(ckpt, data, tmp_path / "o", folds=[1], seed=-1)
    with pytest.raises(TumorlensError, match=r"no fold 9 in metadata.csv \(it has folds 1, 2\)"):
        localize(ckpt, data, tmp_path / "o", folds=[1, 9])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TumorlensError, match="afile"):
        localize(ckpt, data, tmp_path / "afile", folds=[1], methods=["gradcam"])
    meta = data / "metadata.csv"
    text = meta.read_text()
    meta.write_text(text, encoding="utf-8-sig")  # Excel's CSV UTF-8
    assert localize(ckpt, data, tmp_path / "bom", folds=[1], methods=["gradcam"])["data"]["n_images"] > 0
    lines = text.splitlines()
    meta.write_text("\n".join(lines[:2] + [lines[2].rsplit(",", 2)[0]]) + "\n")  # the second row cut short
    with pytest.raises(TumorlensError, match=r"metadata.csv: row 3 has no class_name, cv_fold"):
        localize(ckpt, data, tmp_path / "o", folds=[1])
    meta.write_text(lines[0] + "\n")
    with pytest.raises(TumorlensError, match="has a header but no rows"):
        localize(ckpt, data, tmp_path / "o", folds=[1])



def test_a_blank_image_with_a_real_mask_is_skipped_with_its_reason(ckpt, tmp_path):
    """An all-black or uniformly grey image beside a real mask was scored as a slice, with no note (an audit)."""
    data = _phantom_figshare(tmp_path / "figshare")
    Image.fromarray(np.full((128, 128), 90, np.uint8)).save(data / "images" / "1.png")  # fold 1, a meningioma
    doc = localize(ckpt, data, tmp_path / "o", folds=[1], methods=["gradcam"])
    assert any("1.png: blank image (every pixel 90)" in s["reason"] for s in doc["data"]["skipped"])
