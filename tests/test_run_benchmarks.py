"""benchmarks/run_benchmarks.py: a finished run is reused only when the requested recipe trained it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_benchmark
from tumorlens.config import TrainConfig
from tumorlens.split import SplitRow, write_split


def _load():
    return load_benchmark("run_benchmarks")


def _finished_run(runs: Path, cfg: TrainConfig) -> dict:
    r = {"name": "clean-lstm-s0", "strategy": "clean", "seed": 0, "head": "lstm"}
    write_split([SplitRow("a.png", "glioma", "train", "g1", "")], runs / "split-clean-s0.csv")
    run = runs / r["name"] / "run"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"")
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    return r


def test_finished_run_of_another_recipe_is_refused_with_the_differing_settings(tmp_path):
    rb = _load()
    old = TrainConfig().with_overrides(["seed=0", "threads=1", "model.head=lstm", "patience=3", "model.dense=64"])
    r = _finished_run(tmp_path, old)
    with pytest.raises(SystemExit, match=r"differs in: model\.dense, patience\); move .* aside or pass --runs"):
        rb.run_one(r, None, None, None, tmp_path, threads=1)


def test_diff_names_nested_settings():
    rb = _load()
    assert rb._diff({"a": 1, "m": {"x": 1, "y": 2}}, {"a": 1, "m": {"x": 1, "y": 3}, "b": 0}) == ["b", "m.y"]


def test_a_variant_recipe_reuses_its_runs_and_only_inference_settings_may_differ(tmp_path):
    rb = _load()
    run = tmp_path / "run"
    run.mkdir()
    trained = TrainConfig().with_overrides(["seed=0", "threads=1", "turn=0.1"])
    (run / "config.json").write_text(json.dumps(trained.to_dict()))
    rb.check_reusable(run, trained, tmp_path)  # the same recipe
    rb.check_reusable(run, trained.with_overrides(["flip_average=false"]), tmp_path)  # prediction only
    with pytest.raises(SystemExit, match=r"differs in: turn\)"):
        rb.check_reusable(run, TrainConfig().with_overrides(["seed=0", "threads=1"]), tmp_path)


def test_results_name_the_variant_and_the_command_that_regenerates_them(tmp_path):
    rb = _load()
    res = {"name": "clean-lstm-s0", "strategy": "clean", "head": "lstm", "seed": 0, "n_test": 10,
           "accuracy": 0.9, "accuracy_ci": [0.6, 0.98], "macro_f1": 0.89, "macro_auc": 0.95,
           "train_seconds": 1.0, "threads": 1, "torch": "2.13.0+cpu", "correct": [1] * 9 + [0],
           "paths": [str(i) for i in range(10)]}
    rb.write_results([res], tmp_path / "r.md", sets=("turn=0.1",))
    text = (tmp_path / "r.md").read_text()
    assert "`python benchmarks/run_benchmarks.py --set turn=0.1`" in text and "default recipe with `turn=0.1`" in text
    assert "| clean | CNN-LSTM | 0 | 10 | 0.9000 (0.6000-0.9800) | 0.8900 | 0.9500 | 1.0 | 1 | 2.13.0+cpu |" in text


def test_a_bad_setting_is_a_one_line_error_before_any_work(tmp_path, monkeypatch, capsys):
    import sys

    from tumorlens.cli import guarded

    rb = _load()
    monkeypatch.setattr(sys, "argv", ["run_benchmarks.py", "--data", str(tmp_path / "absent"), "--set", "turn=2"])
    assert guarded(rb.main) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "turn" in err and "\n" not in err
