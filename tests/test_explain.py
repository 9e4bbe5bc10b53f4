"""Tests for the heatmaps (explain.py) and the `tumorlens explain` command (cli_explain.py).

Single-threaded torch throughout (the machine is shared with training jobs); a tiny CNN-LSTM is trained
once per module on phantoms (~10 s) for the localisation and CLI tests.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tumorlens.config import CLASSES, DISCLAIMER, ModelConfig, Preprocess, TrainConfig, TumorlensError
from tumorlens.data import preprocess_array
from tumorlens.explain import (
    DEFAULT_METHOD,
    METHODS,
    Explainer,
    _normalize,
    explain_batch,
    explain_slice,
    method_layers,
    overlay_png,
    paste_cam,
)
from tumorlens.localize import map_metrics, mask_info
from tumorlens.model import build_model
from tumorlens.plots import PNG_MAGIC
from tumorlens.synthetic import make_arrays, make_phantom


TINY = ModelConfig(channels=(8, 16, 32, 32), lstm_hidden=32, dense=32, dropout=0.1)
PRE = Preprocess(size=64)


def _model(seed: int = 0, cfg: ModelConfig = TINY) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg, 64).eval()


def _hook_counts(model: torch.nn.Module) -> dict[str, int]:
    """Every hook dict of every module (and torch's global module hooks), by name: entry counts."""
    import torch.nn.modules.module as mm

    counts: dict[str, int] = {}
    for name, m in model.named_modules():
        for attr, v in vars(m).items():
            if "hook" in attr and isinstance(v, dict):
                counts[f"{name}.{attr}"] = len(v)
    for attr in dir(mm):
        v = getattr(mm, attr)
        if attr.startswith("_global") and "hook" in attr and isinstance(v, dict):
            counts[f"global.{attr}"] = len(v)
    return counts


def _flags() -> dict[str, object]:
    return {"grad": torch.is_grad_enabled(), "inference": torch.is_inference_mode_enabled(),
            "cudnn": torch.backends.cudnn.enabled, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "mkldnn": torch.backends.mkldnn.enabled}


def _modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _run_cli(argv: list[str]) -> int:
    """The lead wires `add_parsers` into `tumorlens`; here a bare parser stands in for cli.py."""
    from tumorlens.cli_explain import add_parsers

    p = argparse.ArgumentParser(prog="tumorlens")
    add_parsers(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(argv)
    return a.func(a)


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CNN-LSTM trained for 20 epochs on 200 preprocessed phantoms and their lesion masks, as the
    default recipe trains on masked data (64 px, 1 thread, ~10 s)."""
    from tumorlens.data import crop_square, resize
    from tumorlens.train import SplitData, train

    X, y, M = make_arrays(50, size=128, seed=0)
    prep = [preprocess_array(g * 255, PRE) for g in X]
    xs = np.stack([p[0] for p in prep])
    ms = np.stack([resize(crop_square(M[i].astype(np.float32), prep[i][1]), 64) for i in range(len(y))])
    cfg = TrainConfig(epochs=20, batch_size=32, lr=3e-3, warmup_epochs=0.5, augment=False, seed=0,
                      patience=100, model=TINY, preprocess=PRE)
    tr = SplitData(torch.from_numpy(xs).unsqueeze(1), torch.from_numpy(y), [str(i) for i in range(len(y))],
                   torch.from_numpy(ms).unsqueeze(1), torch.ones(len(y), dtype=torch.bool))
    va = SplitData(torch.zeros(0, 1, 64, 64), torch.zeros(0, dtype=torch.long), [])
    out = tmp_path_factory.mktemp("tiny_run")
    return train(cfg, tr, va, out)


@pytest.fixture(scope="module")
def trained_model(trained):
    from tumorlens.checkpoint import load_checkpoint

    return load_checkpoint(trained).model


# ------------------------------------------------------------------------------------ maps and shapes
@pytest.mark.parametrize("method", METHODS)
def test_batch_maps_have_input_shape_and_unit_range(method):
    model = _model()
    x = torch.rand(5, 1, 64, 64)
    cams, probs = explain_batch(model, x, method=method)
    assert cams.shape == (5, 64, 64) and cams.dtype == np.float32
    assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
    for c in cams:  # each map is scaled to a peak of 1, or is all zero
        assert c.max() == pytest.approx(1.0) or c.max() == 0
    assert probs.shape == (5, 4)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_all_zero_map_stays_zero_and_nan_becomes_zero():
    z = torch.zeros(2, 8, 8)
    z[1, 3, 3] = float("nan")
    assert _normalize(z).abs().sum() == 0
    m = torch.zeros(1, 4, 4)
    m[0, 1, 2] = 3.0
    assert _normalize(m).max() == 1.0


def test_methods_read_the_documented_layers():
    model = _model()
    assert method_layers(model, "gradcam") == [model.cam_layer] == ["gate"]  # the gated last conv map
    assert method_layers(model, "hirescam") == ["gate"]
    # blocks 3 and 4 hold two convs each (block_convs 1, 1, 2, 2): their last ReLU is module 5
    assert method_layers(model, "layercam") == ["features.2.5"]
    assert method_layers(model, "multilayer") == ["gate", "features.2.5", "features.1.2"]
    assert method_layers(model, "fused") == ["gate", "features.0.2"]
    assert method_layers(model, "gated") == ["features.0.2"]
    plain = build_model(ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16, gate=False,
                                    block_convs=()))
    assert method_layers(plain, "gradcam") == [plain.cam_layer] == ["features.3.2"]
    assert method_layers(plain, "multilayer") == ["features.3.2", "features.2.2", "features.1.2"]
    assert method_layers(model, "layercam", layer="features.1.2") == ["features.1.2"]
    with pytest.raises(TumorlensError):
        method_layers(model, "guided-backprop")
    with pytest.raises(TumorlensError):
        method_layers(model, "gradcam", layer="features.9.9")


def test_targets_default_to_the_predicted_class_and_are_checked():
    model = _model()
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    default, _ = explain_batch(model, x)
    explicit, _ = explain_batch(model, x, targets=pred)
    np.testing.assert_array_equal(default, explicit)
    other = (pred + 1) % 4
    assert not np.array_equal(explain_batch(model, x, targets=other)[0], default)
    with pytest.raises(TumorlensError, match="out of range"):
        explain_batch(model, x, targets=[0, 1, 4])
    with pytest.raises(TumorlensError, match="target classes for 3 images"):
        explain_batch(model, x, targets=[0, 1])


def test_same_input_gives_identical_map():
    model = _model(1)
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    for method in METHODS:
        a, pa = explain_batch(model, x, method=method)
        b, pb = explain_batch(model, x.clone(), method=method)
        assert np.array_equal(a, b) and np.array_equal(pa, pb)


def test_batched_maps_equal_one_at_a_time():
    model = _model(2)
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    batch, _ = explain_batch(model, x, method="multilayer")
    single = np.stack([explain_batch(model, x[i:i + 1], method="multilayer")[0][0] for i in range(4)])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_gradient_flows_through_the_lstm_rows():
    """A map must depend on the head: the LSTM reshape is differentiated, not bypassed."""
    a = _model(0)
    b = _model(0)
    with torch.no_grad():
        for p in b.lstm.parameters():
            p.mul_(-1.0)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(5))
    assert not np.allclose(explain_batch(a, x, targets=0)[0], explain_batch(b, x, targets=0)[0])


# ------------------------------------------------------------------------------- hooks, flags, modes
def test_no_hook_or_flag_left_behind():
    model = _model()
    before, flags, modes = _hook_counts(model), _flags(), _modes(model)
    assert any(k.endswith("_forward_hooks") for k in before)
    for method in METHODS:
        explain_batch(model, torch.rand(2, 1, 64, 64), method=method)
    explain_slice(model, np.random.rand(64, 64).astype(np.float32), (0, 0, 64), (64, 64), target=1)
    assert _hook_counts(model) == before
    assert _flags() == flags
    assert _modes(model) == modes
    assert all(p.grad is None for p in model.parameters())  # autograd.grad, never .backward()


def test_hooks_flags_and_modes_restored_after_exception_mid_explanation(monkeypatch):
    model = _model()
    model.train()
    model.features[1].eval()  # a mixed state must come back exactly, module by module
    before, modes = _hook_counts(model), _modes(model)

    inside = []

    def boom(*args, **kwargs):
        inside.append((torch.backends.mkldnn.enabled, torch.is_grad_enabled()))
        raise RuntimeError("planted failure inside the forward pass")

    monkeypatch.setattr(model.lstm, "forward", boom)
    with torch.no_grad():
        flags = _flags()
        with pytest.raises(RuntimeError, match="planted failure"):
            with Explainer(model, ["features.3.2", "features.2.2"], disable_cudnn=True, disable_mkldnn=True) as ex:
                assert not torch.backends.cudnn.enabled
                assert torch.is_grad_enabled() and not model.training
                assert _hook_counts(model) != before  # the hooks really were registered
                ex.run(torch.rand(2, 1, 64, 64))
        assert inside == [(False, True)]  # oneDNN was off inside the LSTM, which raised
        assert _flags() == flags and not torch.is_grad_enabled()
    assert _hook_counts(model) == before
    assert _modes(model) == modes
    monkeypatch.undo()
    # an error after the forward pass (a bad target) restores everything too
    with pytest.raises(TumorlensError):
        explain_batch(model, torch.rand(2, 1, 64, 64), targets=[0, 7], disable_cudnn=True)
    assert _hook_counts(model) == before and _modes(model) == modes and _flags()["cudnn"] == flags["cudnn"]


def test_training_mode_and_grad_mode_restored():
    model = _model()
    model.train()
    with torch.no_grad():
        cams, _ = explain_batch(model, torch.rand(2, 1, 64, 64))
        assert not torch.is_grad_enabled()
    assert model.training and all(_modes(model))
    assert cams.max() > 0  # the explanation ran in eval mode with gradients on, despite no_grad outside
    with torch.inference_mode():
        x = torch.rand(2, 1, 64, 64)  # an inference tensor
        cams2, _ = explain_batch(model, x)
        assert torch.is_inference_mode_enabled()
    assert cams2.shape == (2, 64, 64)


def test_entering_an_explainer_twice_is_refused_and_the_first_entry_still_restores():
    model = _model().train()
    ex = Explainer(model, ["features.3.2"])
    with ex:
        with pytest.raises(RuntimeError, match="already in use"):
            ex.__enter__()
    assert model.training and all(not m._forward_hooks for m in model.modules())


def test_targets_must_be_class_indices():
    model = _model()
    x = torch.rand(2, 1, 64, 64)
    for bad in (1.7, "glioma", [0.5, 1]):
        with pytest.raises(TumorlensError, match="targets must be class indices"):
            explain_batch(model, x, targets=bad)
    a, _ = explain_batch(model, x, targets=2.0)  # a whole float is an index
    b, _ = explain_batch(model, x, targets=2)
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_hooks_ignore_other_threads():
    import threading

    model = _model()
    seen = []
    with Explainer(model, ["features.3.2"]) as ex:
        t = threading.Thread(target=lambda: seen.append(model(torch.rand(1, 1, 64, 64)).shape))
        t.start()
        t.join()
        assert ex._acts == {}  # the other thread's forward pass was not captured
    assert seen == [torch.Size([1, 4])]


# ------------------------------------------------------------------------------- original resolution
def test_paste_cam_maps_the_crop_box_back_and_clips_outside():
    cam = np.ones((8, 8), np.float32)
    out = paste_cam(cam, (-10, 5, 40), (30, 50))
    assert out.shape == (30, 50) and out.dtype == np.float32
    assert out[:, 5:45].min() == pytest.approx(1.0) and out[:, :5].max() == 0 and out[:, 45:].max() == 0
    # a box entirely outside gives an empty map; a gradient keeps its orientation
    assert paste_cam(cam, (100, 100, 10), (30, 50)).max() == 0
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
    up = paste_cam(ramp, (0, 0, 64), (64, 64))
    assert up[:, 60].mean() > up[:, 3].mean()


def test_explain_slice_returns_original_resolution_map():
    model = _model()
    p = make_phantom("glioma", np.random.default_rng(0), 160)
    gray = p.image.astype(np.float32)[:, 10:150]  # 160 x 140: non-square
    x, box = preprocess_array(gray, PRE)
    heat = explain_slice(model, x, box, gray.shape, target=0)
    assert heat.shape == gray.shape and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0
    heat2 = explain_slice(model, x, box, gray.shape, target=0, method="layercam")
    assert heat2.shape == gray.shape


def test_overlay_png_is_written_atomically(tmp_path):
    p = make_phantom("meningioma", np.random.default_rng(1), 96)
    heat = np.zeros((96, 96), np.float32)
    heat[30:50, 40:60] = 1.0
    out = overlay_png(p.image, heat, tmp_path / "sub" / "o.png", "meningioma 0.91", mask=p.mask)
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert sorted(f.name for f in out.parent.iterdir()) == ["o.png"]  # no temporary file left
    with Image.open(out) as im:
        assert im.size[0] > 300 and im.size[1] > 300
    with pytest.raises(TumorlensError):
        overlay_png(p.image, heat[:50], tmp_path / "bad.png")


def test_overlay_draws_the_scan_at_its_own_width_between_the_limits(tmp_path):
    """A 1,536-px scan came out 561 px wide in its overlay (a fixed 110 dpi), against "original resolution" in
    the docs (a helper's audit). The scan is a grey ramp (never white once windowed): the overlay's non-white
    pixels on its middle row, left of the colour bar, are the scan's drawn width."""
    from tumorlens.explain import OVERLAY_MAX_WIDTH, OVERLAY_MIN_WIDTH

    for w, want in ((1200, 1200), (300, OVERLAY_MIN_WIDTH), (3000, OVERLAY_MAX_WIDTH)):
        g = np.tile(np.linspace(0.3, 0.7, w, dtype=np.float32), (200, 1))
        g[:5], g[5:10] = 0.0, 1.0  # the window (0.5th to 99.5th percentile) is 0..1: the ramp stays grey
        out = overlay_png(g, np.zeros_like(g), tmp_path / f"o{w}.png")
        rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
        row = rgb[rgb.shape[0] // 2]
        drawn = np.flatnonzero((row < 250).any(1)[: int(rgb.shape[1] * 0.84)])  # the colour bar starts at 0.86
        assert abs(len(drawn) - want) <= 2, (w, len(drawn))


# --------------------------------------------------------------------------------- localisation
def test_trained_model_map_hits_the_planted_lesion(trained_model):
    """Held-out tumour phantoms: the maps' maxima fall on the lesion far more often than a random map's."""
    Xt, yt, Mt = make_arrays(20, size=128, seed=1)
    keep = yt != CLASSES.index("notumor")
    Xt, yt, Mt = Xt[keep], yt[keep], Mt[keep]
    prep = [preprocess_array(g * 255, PRE) for g in Xt]
    x = torch.from_numpy(np.stack([p[0] for p in prep])).unsqueeze(1)
    rng = np.random.default_rng(0)
    rates, energy = {}, {}
    mask_fraction = float(Mt.mean())
    for method in ("gradcam", "multilayer", "gated", "random"):
        if method == "random":
            cams = rng.random((len(yt), 64, 64), dtype=np.float32)
        else:
            cams, probs = explain_batch(trained_model, x, targets=yt, method=method)
            assert (probs.argmax(1) == yt).mean() >= 0.7  # the tiny model did learn the classes
        res = [map_metrics(paste_cam(cams[i], prep[i][1], (128, 128)), mask_info(Mt[i])) for i in range(len(yt))]
        rates[method] = np.mean([r["pointing"] for r in res])
        energy[method] = np.mean([r["energy"] for r in res])
    assert rates["random"] <= 0.1
    # measured (1 thread): gated 1.00, multilayer 0.88, gradcam 0.62, random 0.05
    assert rates["gated"] >= 0.9, rates
    assert rates["multilayer"] >= max(0.6, rates["random"] + 0.4), rates
    assert rates["gradcam"] >= rates["random"] + 0.3, rates
    # energy in the lesion, measured: gated 0.46, gradcam 0.11, multilayer 0.09; lesions cover ~1.8% of a slice
    assert energy["gated"] >= 10 * mask_fraction, energy
    assert energy["multilayer"] >= 2 * mask_fraction and energy["gradcam"] >= 2 * mask_fraction, energy


# -------------------------------------------------------------------------------------------- CLI
def _write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def test_explain_cli_skips_bad_inputs_and_explains_the_rest(trained, tmp_path, capsys):
    data = tmp_path / "in"
    good = {
        "a/scan.png": make_phantom("glioma", np.random.default_rng(11), 128).image,
        "b/scan.png": make_phantom("pituitary", np.random.default_rng(12), 128).image,
        "c/other.png": make_phantom("meningioma", np.random.default_rng(13), 96).image[:, 8:88],
    }
    for rel, img in good.items():
        _write_png(data / rel, img)
    (data / "empty.png").write_bytes(b"")
    (data / "notes.png").write_text("this is not an image\n")
    whole = _write_png(tmp_path / "whole.png", make_phantom("glioma", np.random.default_rng(14), 128).image)
    (data / "truncated.png").write_bytes(whole.read_bytes()[:300])
    out = tmp_path / "out"

    rc = _run_cli(["explain", "--model", str(trained), str(data), str(tmp_path / "missing.png"), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    for bad in ("empty.png", "notes.png", "truncated.png", "missing.png"):
        assert sum(bad in line for line in err_lines) == 1, (bad, err_lines)
    assert "explained 3 of 7" in captured.out

    # the two scan.png from different folders do not overwrite each other
    stems = sorted(p.stem for p in out.glob("*.json"))
    assert stems == ["a__scan", "b__scan", "other"]
    for rel, img in good.items():
        name = "other" if rel.startswith("c/") else rel.replace("/", "__")[:-4]
        heat = np.load(out / f"{name}.npy")
        assert heat.shape == img.shape and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() <= 1
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["disclaimer"] == DISCLAIMER and doc["method"] == DEFAULT_METHOD
        assert set(doc["probabilities"]) == set(CLASSES)
        assert doc["explained_class"] == doc["label"] and doc["heatmap_shape"] == list(img.shape)
        assert doc["status"] in ("ok", "uncertain")
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_explain_cli_method_and_target_class(trained, tmp_path, capsys):
    img = _write_png(tmp_path / "x.png", make_phantom("meningioma", np.random.default_rng(21), 128).image)
    out = tmp_path / "o"
    rc = _run_cli(["explain", "--model", str(trained), str(img), "--out", str(out), "--method", "layercam",
                   "--target-class", "Pituitary"])
    assert rc == 0
    doc = json.loads((out / "x.json").read_text())
    assert doc["method"] == "layercam" and doc["explained_class"] == "pituitary"
    assert doc["explained_class_is"] == "given"
    with pytest.raises(TumorlensError, match="not one of the model's classes"):
        _run_cli(["explain", "--model", str(trained), str(img), "--out", str(out), "--target-class", "cat"])
    capsys.readouterr()


def test_an_explain_rerun_interrupted_mid_image_leaves_no_record_of_the_earlier_method(trained, tmp_path,
                                                                                        monkeypatch):
    """Rerun into the same folder with another --method and stopped after the new map, before the new record:
    the old record (method gated) sat beside the new map (an I/O audit)."""
    import tumorlens.fileio as fileio

    img = _write_png(tmp_path / "x.png", make_phantom("glioma", np.random.default_rng(3), 128).image)
    out = tmp_path / "o"
    assert _run_cli(["explain", "--model", str(trained), str(img), "--out", str(out), "--method", "gated"]) == 0
    assert json.loads((out / "x.json").read_text())["method"] == "gated"
    write = fileio.atomic_write_bytes

    def stop_at_the_record(path, data):
        if str(path).endswith(".json"):
            raise KeyboardInterrupt
        return write(path, data)

    monkeypatch.setattr(fileio, "atomic_write_bytes", stop_at_the_record)
    with pytest.raises(KeyboardInterrupt):
        _run_cli(["explain", "--model", str(trained), str(img), "--out", str(out), "--method", "layercam"])
    assert not (out / "x.json").exists() and (out / "x.npy").is_file()


def test_an_empty_heatmap_is_one_whose_maximum_is_at_most_one_millionth():
    from tumorlens.explain import heatmap_is_empty

    assert heatmap_is_empty(np.zeros((8, 8), np.float32))
    assert heatmap_is_empty(np.full((8, 8), 1e-7, np.float32))
    assert heatmap_is_empty(np.full((8, 8), np.nan, np.float32))
    one = np.zeros((8, 8), np.float32)
    one[3, 4] = 1e-3
    assert not heatmap_is_empty(one)


def test_explain_cli_says_so_when_a_map_is_empty(trained, tmp_path, capsys, monkeypatch):
    """`explain tall.png --method gradcam` wrote a map whose maximum was 0.0 with status ok, and an overlay
    that looked like "no hot spot here". An empty map is now flagged in the record, the overlay's title and on
    stderr; a map with evidence is not."""
    from predict_helpers import blank_maps_for, spy_overlays

    full = _write_png(tmp_path / "full.png", make_phantom("glioma", np.random.default_rng(41), 128).image)
    blank = _write_png(tmp_path / "blank.png", make_phantom("pituitary", np.random.default_rng(42), 96).image)
    blank_maps_for(monkeypatch, (96, 96))  # the map of blank.png is empty
    titles = spy_overlays(monkeypatch)
    out = tmp_path / "o"
    assert _run_cli(["explain", "--model", str(trained), str(full), str(blank), "--out", str(out),
                     "--method", "layercam", "--no-refuse"]) == 0
    cap = capsys.readouterr()
    docs = {n: json.loads((out / f"{n}.json").read_text()) for n in ("full", "blank")}
    assert np.load(out / "blank.npy").max() == 0.0 and np.load(out / "full.npy").max() > 0.5
    assert docs["blank"]["heatmap_empty"] is True and docs["full"]["heatmap_empty"] is False
    t_full, t_blank = titles.values()
    assert t_blank.startswith("blank.png: ")
    assert t_blank.endswith(f"no evidence for '{docs['blank']['explained_class']}' by layercam: empty map")
    assert "no evidence" not in t_full and f"layercam map for '{docs['full']['explained_class']}'" in t_full
    warned = [line for line in cap.err.splitlines() if "empty" in line]
    assert len(warned) == 1 and warned[0].startswith(f"{blank}: the layercam map for")
    assert "(1 with an empty map: no evidence)" in cap.out and DISCLAIMER in cap.out


def test_explain_overlay_titles_name_the_method_and_each_nifti_slice(trained, tmp_path, capsys, monkeypatch):
    """The overlays of a volume's slices were all titled `vol.nii.gz: ...`; each now says which slice it is."""
    from predict_helpers import nifti_bytes, spy_overlays

    vol = np.stack([make_phantom("glioma", np.random.default_rng(50 + k), 64).image.astype(np.float32)
                    for k in range(10)], -1)
    (tmp_path / "vol.nii.gz").write_bytes(nifti_bytes(vol, gz=True))
    titles = spy_overlays(monkeypatch)
    out = tmp_path / "o"
    assert _run_cli(["explain", "--model", str(trained), str(tmp_path / "vol.nii.gz"), "--out", str(out),
                     "--method", "hirescam", "--no-refuse"]) == 0
    capsys.readouterr()
    slices = sorted(json.loads(p.read_text())["slice"] for p in out.glob("*.json"))
    assert len(slices) > 1 and len(titles) == len(slices)
    for k in slices:
        (title,) = [t for t in titles.values() if t.startswith(f"vol.nii.gz slice {k}: ")]
        assert "\nhirescam map for '" in title and (out / f"vol_slice{k:03d}.png").is_file()


def test_explain_slice_explains_that_one_nifti_slice(trained, tmp_path, capsys):
    """explain had no --slice (predict and the web API have): a map of a slice outside the automatic subset could
    not be had from the CLI (a helper's audit)."""
    from predict_helpers import nifti_bytes

    vol = np.stack([make_phantom("glioma", np.random.default_rng(50 + k), 64).image.astype(np.float32)
                    for k in range(10)], -1)
    (tmp_path / "vol.nii.gz").write_bytes(nifti_bytes(vol, gz=True))
    out = tmp_path / "o"
    assert _run_cli(["explain", "--model", str(trained), str(tmp_path / "vol.nii.gz"), "--out", str(out),
                     "--slice", "0", "--no-refuse"]) == 0
    capsys.readouterr()
    assert [json.loads(p.read_text())["slice"] for p in out.glob("*.json")] == [0]
    assert (out / "vol_slice000.npy").is_file()


def test_output_names_disambiguate_colliding_stems(tmp_path):
    from tumorlens.cli_explain import output_names

    paths = [str(tmp_path / p) for p in ("a/x/scan.png", "b/x/scan.png", "a/scan.jpg", "a/scan.png",
                                          "c/Scan.PNG", "solo.png", "a/x/../weird name!.png")]
    names = output_names(paths)
    assert len(set(n.lower() for n in names.values())) == len(paths)
    assert names[paths[5]] == "solo"
    assert all(n and "/" not in n and not n.startswith(".") for n in names.values())


def test_a_slice_output_named_like_another_inputs_output_is_numbered_not_overwritten():
    """`a.nii` slice 4 and a file `a_slice004.png` both come to `a_slice004`: the later one is numbered."""
    from tumorlens.cli_explain import claim_name

    used: set[str] = set()
    assert [claim_name(n, used) for n in ("a_slice004", "A_slice004", "a_slice004", "b")] == [
        "a_slice004", "A_slice004_2", "a_slice004_3", "b"]


def test_explain_cli_ignores_its_own_outputs_inside_the_input_folder(trained, tmp_path, capsys):
    _write_png(tmp_path / "scan.png", make_phantom("glioma", np.random.default_rng(31), 96).image)
    out = tmp_path / "maps"
    assert _run_cli(["explain", "--model", str(trained), str(tmp_path), "--out", str(out)]) == 0
    assert _run_cli(["explain", "--model", str(trained), str(tmp_path), "--out", str(out)]) == 0  # rerun
    assert sorted(p.name for p in out.iterdir()) == ["scan.json", "scan.npy", "scan.png"]
    # the overlay PNG; its record (.json) and map (.npy) are skipped by name already (predict.NOT_IMAGES)
    assert "ignored 1 file(s) inside the output folder" in capsys.readouterr().err


def test_explain_cli_never_ignores_a_named_file_nor_writes_over_it(trained, tmp_path, capsys):
    """`explain clob/scan.png --out clob` said "explained 0 of 0 ... ignored 1 file(s)" and exited 0; a
    named file is explained, and its overlay, which would be clob/scan.png, takes another name."""
    d = tmp_path / "clob"
    scan = _write_png(d / "scan.png", make_phantom("glioma", np.random.default_rng(32), 96).image)
    before = scan.read_bytes()
    assert _run_cli(["explain", "--model", str(trained), str(scan), "--out", str(d)]) == 0
    cap = capsys.readouterr()
    assert "explained 1 of 1" in cap.out and "ignored" not in cap.err
    assert scan.read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["scan.png", "scan_2.json", "scan_2.npy", "scan_2.png"]
    # the folder walked: the user's scan is read again, the overlay written beside its record is not
    assert _run_cli(["explain", "--model", str(trained), str(d), "--out", str(d)]) == 0
    cap = capsys.readouterr()
    assert "explained 1 of 1" in cap.out and "ignored 1 file(s) inside the output folder" in cap.err
    assert scan.read_bytes() == before and len(list(d.iterdir())) == 4


@pytest.mark.slow
def test_batch_of_64_maps_within_half_a_second():
    """The speed target for the default method: default architecture at 64 px, weights as loaded from a
    checkpoint (contiguous), one thread, best of five (run alone: -m slow). On 2026-11-26 this machine,
    shared with a training job, gave 0.32 s; 0.19 s with channels_last weights."""
    import time

    from tumorlens.explain import DEFAULT_METHOD

    model = _model(0, ModelConfig())
    x = torch.rand(64, 1, 64, 64)
    explain_batch(model, x, method=DEFAULT_METHOD)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        explain_batch(model, x, method=DEFAULT_METHOD)
        times.append(time.perf_counter() - t0)
    assert min(times) <= 0.5, times


def test_backend_flags_restored_when_explainers_overlap():
    """Two explainers (e.g. two web requests) leaving in the order they entered restore the flag once."""
    from tumorlens.explain import _backend_disabled

    was = torch.backends.mkldnn.enabled
    a = _backend_disabled("mkldnn", torch.backends.mkldnn)
    b = _backend_disabled("mkldnn", torch.backends.mkldnn)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert torch.backends.mkldnn.enabled is False  # b is still inside
    b.__exit__(None, None, None)
    assert torch.backends.mkldnn.enabled == was


def test_concurrent_explanations_in_threads_leave_flags_and_hooks_as_found():
    import threading

    model = _model()
    before, flags = _hook_counts(model), _flags()
    x = torch.rand(2, 1, 64, 64)
    ref, _ = explain_batch(model, x)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(explain_batch(model, x)[0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 9
    assert all(np.allclose(r, ref, atol=1e-5) for r in results)
    assert _hook_counts(model) == before and _flags() == flags


def test_cli_module_is_light_and_lists_the_same_methods():
    import subprocess
    import sys

    from tumorlens import cli_explain, explain

    assert cli_explain.METHODS == explain.METHODS
    code = "import sys, tumorlens.cli_explain; print(','.join(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_fused_map_is_the_product_of_gradcam_and_first_block_layercam():
    model = _model(3)
    x = torch.from_numpy(make_arrays(2, size=64, seed=5)[0][:6]).unsqueeze(1)
    fused, _ = explain_batch(model, x, None, "fused")
    g, _ = explain_batch(model, x, None, "gradcam")
    l0, _ = explain_batch(model, x, None, "layercam", layer="features.0.2")
    assert fused.shape == (6, 64, 64) and fused.min() >= 0 and fused.max() <= 1
    for i in range(6):
        prod = g[i] * l0[i]
        if prod.max() > 0:
            np.testing.assert_allclose(fused[i], prod / prod.max(), atol=1e-5)
        else:  # no shared positive pixel: the mean of the two is shown
            mean = (g[i] + l0[i]) / 2
            np.testing.assert_allclose(fused[i], mean / mean.max() if mean.max() > 0 else mean, atol=1e-5)


def test_explain_names_the_frame_of_a_multiframe_file_that_it_could_not_explain(trained, tmp_path, capsys):
    """It printed 'multi3.dcm: not explained (rejected ...)' without saying which frame; predict says 'frame 2'."""
    from predict_helpers import dicom_bytes

    head = make_phantom("glioma", np.random.default_rng(21), 128).image.astype(np.uint16)
    (tmp_path / "multi.dcm").write_bytes(dicom_bytes(np.stack([head, np.zeros_like(head)])))  # frame 1 is blank
    rc = _run_cli(["explain", "--model", str(trained), str(tmp_path / "multi.dcm"), "--out", str(tmp_path / "o")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "multi.dcm" in ln]
    assert rc == 1 and len(err) == 1
    assert err[0].startswith(f"{tmp_path / 'multi.dcm'} frame 1: ") and "blank or constant" in err[0]


def test_explain_says_nothing_was_written_when_no_input_was_explained(trained, tmp_path, capsys):
    rc = _run_cli(["explain", "--model", str(trained), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 1 and "explained 0 of 1" in out and "nothing written" in out and "wrote" not in out


def test_output_names_count_nii_gz_as_one_extension():
    """vol3d.nii.gz gave vol3d.nii_slice004.* while vol2d.nii gave vol2d_slice000.*."""
    from tumorlens.cli_explain import output_names

    names = output_names(["a/vol3d.nii.gz", "b/vol2d.nii", "c/scan.png", "d/x.nii.gz", "d/x.nii"])
    assert names["a/vol3d.nii.gz"] == "vol3d" and names["b/vol2d.nii"] == "vol2d" and names["c/scan.png"] == "scan"
    assert len({names["d/x.nii.gz"].lower(), names["d/x.nii"].lower()}) == 2  # same folder, same stem: told apart


def test_overlay_refuses_an_opacity_above_one_a_mask_of_another_shape_and_an_unknown_colour_map(tmp_path):
    """alpha = 1.5 wrapped the 8-bit opacity (the hottest pixels turned clear); a mask of another shape and a
    bad cmap failed inside matplotlib (a library audit)."""
    g = np.zeros((40, 40), np.float32)
    for kwargs, says in (({"alpha": 1.5}, "alpha must be in"), ({"mask": np.zeros((10, 10))}, "mask must have"),
                         ({"cmap": "nope"}, "colour map 'nope'")):
        with pytest.raises(TumorlensError, match=says):
            overlay_png(g, g, tmp_path / "o.png", **kwargs)
    assert not (tmp_path / "o.png").exists()
