"""Outlier exposure (outliers.py, TrainConfig.outliers): generated non-MRI images, the loss towards a uniform
answer, and a run that stays deterministic and resumable with it on."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from test_train import TINY, data, stop_after_first  # noqa: F401 - data is a fixture
from tumorlens.config import TumorlensError
from tumorlens.outliers import outlier_batch, outlier_loss
from tumorlens.train import train


def test_outlier_images_are_in_range_and_drawn_from_the_generator_only():
    a = outlier_batch(12, 64, torch.Generator().manual_seed(3))
    b = outlier_batch(12, 64, torch.Generator().manual_seed(3))
    c = outlier_batch(12, 64, torch.Generator().manual_seed(4))
    assert a.shape == (12, 1, 64, 64) and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(float(img.std()) > 0.01 for img in a)  # never a blank frame (the image checks refuse those anyway)


def test_the_outlier_loss_is_the_cross_entropy_to_the_uniform_answer():
    k = 4
    assert float(outlier_loss(torch.zeros(3, k))) == pytest.approx(math.log(k))  # uniform logits: log K, its minimum
    z = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    # by hand: log-softmax = z - log(e^2 + 3); mean over the classes = 0.5 - log(e^2 + 3)
    assert float(outlier_loss(z)) == pytest.approx(math.log(math.e ** 2 + 3) - 0.5)
    assert float(outlier_loss(z)) > math.log(k)


def test_an_outlier_exposure_run_differs_from_plain_and_resumes_to_the_same_weights(data, tmp_path):
    cfg = TINY.with_overrides(["outliers=0.5"])
    full = train(cfg, *data, tmp_path / "full")
    wa, wp = load_file(str(full)), load_file(str(train(TINY, *data, tmp_path / "plain")))
    assert any(not torch.equal(wa[k], wp[k]) for k in wa if wa[k].is_floating_point())
    with pytest.raises(KeyboardInterrupt):
        train(cfg, *data, tmp_path / "cut", on_epoch=stop_after_first)
    wb = load_file(str(train(cfg, *data, tmp_path / "cut", resume=True)))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_outlier_weight_out_of_range_is_refused():
    with pytest.raises(TumorlensError, match="outliers must be in"):
        TINY.with_overrides(["outliers=-1"])
