"""Model contracts: shapes at every stage, gradients everywhere, the named CAM layer, the ablation."""
from __future__ import annotations

import pytest
import torch

from tumorlens.config import ModelConfig, TumorlensError
from tumorlens.model import FineGate, TumourGate, build_model, count_parameters

SMALL = ModelConfig(channels=(8, 16, 16, 32), lstm_hidden=16, dense=16)


@pytest.mark.parametrize("head", ["lstm", "pool"])
@pytest.mark.parametrize("size", [64, 96])
def test_shapes_from_image_to_logits(head, size):
    m = build_model(ModelConfig(**{**SMALL.__dict__, "head": head}), size).eval()
    x = torch.rand(3, 1, size, size)
    f = m.forward_features(x)
    assert f.shape == (3, 32, size // 8, size // 8)
    assert m.forward_head(f).shape == (3, 4)
    assert torch.equal(m(x), m.forward_head(f))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    m = build_model(SMALL)
    m(torch.rand(4, 1, 64, 64)).logsumexp(1).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


@pytest.mark.parametrize("gate,fine", [(False, False), (True, False), (True, True)])
def test_cam_layer_names_the_relu_after_the_last_convolution_or_its_gate(gate, fine):
    from dataclasses import replace

    m = build_model(replace(SMALL, gate=gate, fine_gate=fine))
    mod = m.get_cam_module()
    assert isinstance(mod, (FineGate if fine else TumourGate) if gate else torch.nn.ReLU)
    seen = {}
    h = mod.register_forward_hook(lambda _m, _i, o: seen.update(shape=o.shape))  # returns None
    m(torch.rand(2, 1, 64, 64))
    h.remove()
    assert seen["shape"] == (2, 32, 8, 8)


def test_unidirectional_lstm_and_unknown_head():
    m = build_model(ModelConfig(**{**SMALL.__dict__, "bidirectional": False}))
    assert m(torch.rand(2, 1, 64, 64)).shape == (2, 4)
    with pytest.raises(TumorlensError, match="model.head must be lstm or pool"):
        build_model(ModelConfig(**{**SMALL.__dict__, "head": "transformer"}))


def test_pool_skip_feeds_the_pooled_map_beside_the_lstm_and_every_parameter_learns():
    from dataclasses import replace

    torch.manual_seed(0)
    m = build_model(replace(SMALL, pool_skip=True))
    assert m.head[1].in_features == 2 * 16 + 32  # biLSTM(16) + 32 channels
    m(torch.rand(4, 1, 64, 64)).logsumexp(1).sum().backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]


def test_lstm_in_narrows_the_map_the_lstm_reads_and_every_parameter_learns():
    from dataclasses import replace

    torch.manual_seed(0)
    m = build_model(replace(SMALL, lstm_in=4))
    assert m.squeeze.out_channels == 4 and m.lstm.input_size == 4 * 8  # 4 channels x 8 columns per row
    plain = build_model(replace(SMALL, lstm_in=0))
    assert plain.squeeze is None and plain.lstm.input_size == 32 * 8  # all 32 channels x 8 columns
    assert ModelConfig().lstm_in == 0  # off by default: measured, not adopted (docs/experiments.md)
    assert build_model(replace(SMALL, head="pool", lstm_in=4)).squeeze is None
    x = torch.rand(4, 1, 64, 64)
    assert m.forward_features(x).shape == (4, 32, 8, 8)  # the CAM layer keeps every channel
    m(x).logsumexp(1).sum().backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    with pytest.raises(TumorlensError, match="model.lstm_in"):
        replace(SMALL, lstm_in=-1)


def test_a_config_written_before_lstm_in_existed_loads_without_the_projection():
    from tumorlens.config import TrainConfig

    d = TrainConfig().to_dict()
    del d["model"]["lstm_in"]
    assert TrainConfig.from_dict(d).model.lstm_in == 0
    assert TrainConfig().with_overrides(["model.lstm_in=32"]).model.lstm_in == 32


def test_separable_second_convs_are_depthwise_then_pointwise_and_every_parameter_learns():
    from dataclasses import replace

    from tumorlens.explain import explain_batch

    torch.manual_seed(0)
    cfg = replace(SMALL, block_convs=(1, 1, 2, 2), separable=True)
    m = build_model(cfg).eval()
    dense = build_model(replace(cfg, separable=False))
    last = m.features[-1]
    # first conv of the block stays a full 3x3; the second is a 3x3 per channel, then a 1x1 across channels
    convs = [c for c in last if isinstance(c, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.groups) for c in convs] == [((3, 3), 1), ((3, 3), 32), ((1, 1), 1)]
    assert count_parameters(m) < count_parameters(dense)
    x = torch.rand(4, 1, 64, 64)
    assert m.forward_features(x).shape == dense.forward_features(x).shape
    m.train()
    m(x).logsumexp(1).sum().backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    maps, _ = explain_batch(m.eval(), x, method="multilayer")  # finds each block's last ReLU by itself
    assert maps.shape == (4, 64, 64)
    assert ModelConfig().separable is False  # off by default


def test_a_checkpoint_written_before_separable_existed_loads_with_full_convs():
    from tumorlens.config import TrainConfig

    d = TrainConfig().to_dict()
    del d["model"]["separable"]
    assert TrainConfig.from_dict(d).model.separable is False
    assert TrainConfig().with_overrides(["model.separable=true"]).model.separable is True
