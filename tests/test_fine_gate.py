"""The fine tumour gate (ModelConfig.fine_gate): shapes, equal inference and training paths, gradients,
legacy checkpoints, the ONNX copy, and the 'gated' heatmap method that reads its map."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tumorlens.config import ModelConfig, TrainConfig, TumorlensError
from tumorlens.explain import explain_batch, method_layers
from tumorlens.model import FineGate, build_model

FINE = ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16, gate=True, fine_gate=True)


def _model(seed: int = 0, cfg: ModelConfig = FINE) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg, 64).eval()


def test_fine_gate_map_is_four_times_finer_and_gates_the_last_map():
    m = _model()
    x = torch.rand(3, 1, 64, 64)
    assert isinstance(m.gate, FineGate) and m.cam_layer == "gate"
    assert m.forward_features(x).shape == (3, 32, 8, 8)
    t = m.tumour_map(x)
    assert t.shape == (3, 32, 32) and float(t.min()) >= 0 and float(t.max()) <= 1
    logits, outs = m.forward_train(x)
    assert [o.shape for o in outs] == [(3, 1, 32, 32)]
    torch.testing.assert_close(logits, m(x), rtol=0, atol=0)
    z, pooled = m.forward_with_pooled(x)
    torch.testing.assert_close(z, m(x), rtol=0, atol=0)
    assert pooled.shape == (3, sum(m.cfg.channels))  # every block's average; the last 32 are the last map's
    torch.testing.assert_close(pooled[:, -32:], m._encode(x)[0].mean((2, 3)), rtol=0, atol=0)


def test_log_sum_exp_pooling_lies_between_the_mean_and_the_maximum_of_each_cell():
    g = FineGate(4, 4, 4)
    s = torch.randn(2, 1, 16, 16) * 3
    f = torch.ones(2, 1, 4, 4)
    pooled = g.apply(f, s)  # f = 1: the pooled gate itself
    p = torch.sigmoid(s)
    mean = torch.nn.functional.avg_pool2d(p, 4)
    peak = torch.nn.functional.max_pool2d(p, 4)
    assert torch.all(pooled >= mean - 1e-6) and torch.all(pooled <= peak + 1e-6)
    assert torch.all(pooled > mean + 1e-4)  # a soft maximum, not the mean


def test_every_parameter_of_the_fine_gate_model_gets_a_gradient():
    m = build_model(FINE).train()
    torch.manual_seed(1)
    logits, outs = m.forward_train(torch.rand(4, 1, 64, 64))
    (logits.logsumexp(1).sum() + outs[0].sum()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_fine_gate_needs_three_blocks_and_is_ignored_without_the_gate():
    assert build_model(replace(FINE, gate=False)).gate is None
    with pytest.raises(TumorlensError, match="3 conv blocks"):
        replace(FINE, channels=(8, 16), block_convs=())
    with pytest.raises(TumorlensError, match="one count"):
        replace(FINE, block_convs=(1, 2))


def test_checkpoint_without_the_setting_loads_as_the_plain_gate(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from tumorlens.checkpoint import META_KEY, load_checkpoint, save_checkpoint

    cfg = TrainConfig(model=replace(FINE, fine_gate=False))
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, _model(cfg=cfg.model), cfg, meta={})
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    doc = json.loads(meta[META_KEY])
    del doc["config"]["model"]["fine_gate"]  # as written before the setting existed
    save_file(state, str(path), metadata={**meta, META_KEY: json.dumps(doc)})
    ck = load_checkpoint(path)
    assert ck.config.model.fine_gate is False and not isinstance(ck.model.gate, FineGate)


def test_fine_gate_checkpoint_round_trips(tmp_path):
    from tumorlens.checkpoint import load_checkpoint, save_checkpoint

    m = _model(2)
    path = tmp_path / "fine.safetensors"
    save_checkpoint(path, m, TrainConfig(model=FINE), meta={})
    ck = load_checkpoint(path)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), m(x))


def test_onnx_copy_of_the_fine_gate_model_matches_pytorch():
    pytest.importorskip("onnxruntime")
    from tumorlens.runtime import try_build

    m = _model(3)
    ort = try_build(m, 64, 1)
    assert ort is not None
    x = np.random.default_rng(0).random((7, 64, 64), dtype=np.float32)
    z, f = ort.run(x)
    with torch.no_grad():
        zt, ft = m.forward_with_pooled(torch.from_numpy(x).unsqueeze(1))
    assert np.abs(z - zt.numpy()).max() < 1e-4 and np.abs(f - ft.numpy()).max() < 1e-4


def test_gated_map_is_the_tumour_map_times_first_block_layercam():
    m = _model(4)
    x = torch.rand(5, 1, 64, 64)
    gated, probs = explain_batch(m, x, None, "gated")
    l0, _ = explain_batch(m, x, None, "layercam", layer="features.0.2")
    t = torch.nn.functional.interpolate(m.tumour_map(x).unsqueeze(1), size=(64, 64), mode="bilinear",
                                        align_corners=False)[:, 0].numpy()
    assert gated.shape == (5, 64, 64) and gated.min() >= 0 and gated.max() <= 1 and probs.shape == (5, 4)
    for i in range(5):
        prod = (t[i] / t[i].max()) * l0[i]
        if prod.max() > 0:
            np.testing.assert_allclose(gated[i], prod / prod.max(), atol=1e-5)


def test_gated_method_reads_the_first_block_and_needs_a_gate():
    assert method_layers(_model(), "gated") == ["features.0.2"]
    plain = build_model(replace(FINE, gate=False, fine_gate=False))
    with pytest.raises(TumorlensError, match="tumour gate"):
        method_layers(plain, "gated")
    coarse = build_model(replace(FINE, fine_gate=False)).eval()
    cams, _ = explain_batch(coarse, torch.rand(2, 1, 64, 64), None, "gated")  # the 8x8 gate works too
    assert cams.shape == (2, 64, 64)


def test_default_method_falls_back_for_a_model_without_a_gate(monkeypatch):
    import tumorlens.explain as ex

    plain = build_model(replace(FINE, gate=False, fine_gate=False)).eval()
    monkeypatch.setattr(ex, "DEFAULT_METHOD", "gated")
    assert ex.default_method(_model()) == "gated"
    assert ex.default_method(plain) == ex.FALLBACK_METHOD
    cams, _ = explain_batch(plain, torch.rand(2, 1, 64, 64))  # no method named: the fallback, no error
    assert cams.shape == (2, 64, 64)
