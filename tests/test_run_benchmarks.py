"""benchmarks/run_benchmarks.py: a finished run is reused only when today's default recipe trained it."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tumorlens.config import TrainConfig
from tumorlens.split import SplitRow, write_split

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run_benchmarks.py"


def _load():
    spec = importlib.util.spec_from_file_location("run_benchmarks", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
