"""Checkpoints whose metadata was edited by hand fail to load with one line naming the file."""
from __future__ import annotations

import pytest
import torch

from tumorlens.checkpoint import load_checkpoint, save_checkpoint
from tumorlens.config import ModelConfig, TrainConfig, TumorlensError
from tumorlens.model import build_model


def _tiny_checkpoint(tmp_path):
    cfg = TrainConfig(model=ModelConfig(channels=(4, 8, 8), block_convs=(1, 1, 1), lstm_hidden=8, dense=8))
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "tiny.safetensors", build_model(cfg.model, cfg.preprocess.size).eval(), cfg,
                           {"calibration": {"temperature": 1.0}})
    return load_checkpoint(path)


@pytest.mark.parametrize("edit, says", [
    ({"refusal": "x"}, "'refusal' must be an object"),
    ({"calibration": []}, "'calibration' must be an object"),
    ({"split": "x"}, "'split' must be an object"),
    ({"refusal": {"ood": {"means": [[0.0, 1.0]], "basis": [[1.0, 0.0]], "lam": [1.0], "sigma2": 1.0,
                          "threshold": float("nan")}}}, "feature-distance threshold nan"),
    ({"refusal": {"ood": {"means": [[0.0, 1.0]], "basis": [[1.0, 0.0, 2.0]], "lam": [1.0], "sigma2": 1.0,
                          "threshold": 1.0}}}, "inconsistent or not finite"),
])
def test_a_hand_edited_metadata_header_is_one_error_naming_the_file(tmp_path, edit, says):
    """A section of the wrong type gave tracebacks in predict, serve and model-card; a NaN feature-distance
    threshold silently turned the refusal off (a helper's audit)."""
    ck = _tiny_checkpoint(tmp_path)
    path = save_checkpoint(tmp_path / "edited.safetensors", ck.model, ck.config, {**ck.meta, **edit})
    with pytest.raises(TumorlensError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value) and "\n" not in str(e.value)


def test_a_class_named_twice_is_refused(tmp_path):
    """["glioma", "glioma", ...] loaded silently: meningioma answers came out labelled glioma."""
    ck = _tiny_checkpoint(tmp_path)
    path = save_checkpoint(tmp_path / "dup.safetensors", ck.model, ck.config, ck.meta,
                           classes=("glioma", "glioma", "notumor", "pituitary"))
    with pytest.raises(TumorlensError, match="class names must be distinct"):
        load_checkpoint(path)
