"""Checkpoints whose metadata was edited by hand fail to load with one line naming the file."""
from __future__ import annotations

import re

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
    ({"refusal": {"lookalike": {"mean": [0.0, 1.0], "scale": [1.0, 1.0], "w": [1.0], "b": 0.0,
                                "threshold": 1.0}}}, "look-alike metadata is damaged"),
])
def test_a_hand_edited_metadata_header_is_one_error_naming_the_file(tmp_path, edit, says):
    """A section of the wrong type gave tracebacks in predict, serve and model-card; a NaN feature-distance
    threshold silently turned the refusal off (a helper's audit). save_checkpoint refuses to write such a
    header in the first place (it had written files that load_checkpoint refuses; a library audit)."""
    ck = _tiny_checkpoint(tmp_path)
    path = _hand_edited(ck.path, tmp_path / "edited.safetensors", edit)
    with pytest.raises(TumorlensError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TumorlensError, match=re.escape(says)):
        save_checkpoint(tmp_path / "saved.safetensors", ck.model, ck.config, {**ck.meta, **edit})
    assert not (tmp_path / "saved.safetensors").exists()


def _hand_edited(src, out, edit=None, classes=None):
    """The checkpoint `src` with its header edited as a person would, past save_checkpoint's checks."""
    import json

    from safetensors.torch import load_file, save_file

    from tumorlens.checkpoint import META_KEY, read_metadata

    doc = {**read_metadata(src), **(edit or {})}
    if classes is not None:
        doc["classes"] = list(classes)
    save_file(load_file(str(src)), str(out), metadata={META_KEY: json.dumps(doc)})
    return out


def test_a_class_named_twice_is_refused(tmp_path):
    """["glioma", "glioma", ...] loaded silently: meningioma answers came out labelled glioma."""
    ck = _tiny_checkpoint(tmp_path)
    dup = ("glioma", "glioma", "notumor", "pituitary")
    path = _hand_edited(ck.path, tmp_path / "dup.safetensors", classes=dup)
    with pytest.raises(TumorlensError, match="class names must be distinct"):
        load_checkpoint(path)
    with pytest.raises(TumorlensError, match="class names must be distinct"):
        save_checkpoint(tmp_path / "dup2.safetensors", ck.model, ck.config, ck.meta, classes=dup)


def test_save_checkpoint_saves_its_arguments_not_what_meta_says(tmp_path):
    """A meta holding other class names or another config relabelled the model silently or kept the old
    settings; numpy numbers in meta failed the save with a JSON TypeError (a library audit)."""
    import numpy as np

    ck = _tiny_checkpoint(tmp_path)
    for key, value in (("classes", ["a", "b", "c", "d"]), ("config", TrainConfig().to_dict())):
        with pytest.raises(TumorlensError, match=f"meta\\['{key}'\\] differs from the {key} given"):
            save_checkpoint(tmp_path / "x.safetensors", ck.model, ck.config, {**ck.meta, key: value})
    path = save_checkpoint(tmp_path / "np.safetensors", ck.model, ck.config,
                           {**ck.meta, "note": {"n": np.int64(3), "acc": np.float32(0.5)}})
    assert load_checkpoint(path).meta["note"] == {"n": 3, "acc": 0.5}
    with pytest.raises(TumorlensError, match="needs the TrainConfig"):
        save_checkpoint(tmp_path / "y.safetensors", ck.model, None)
