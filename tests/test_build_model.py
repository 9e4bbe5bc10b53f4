"""benchmarks/build_model.py refuses to install a stale run: a finished run in --out of another recipe (a
changed default) or, with --reuse-run, weights taken from elsewhere stop it with a one-line reason."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import load_benchmark
from tumorlens.checkpoint import save_checkpoint
from tumorlens.config import TrainConfig
from tumorlens.train import CKPT_FILE, STATE_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # build_model imports its neighbours
build = load_benchmark("build_model")


def test_recipe_diff_names_each_changed_training_setting_and_ignores_inference_ones():
    want = TrainConfig()
    assert build.recipe_diff(want, want) == []
    assert build.recipe_diff(replace(want, flip_average=not want.flip_average), want) == []
    assert build.recipe_diff(replace(want, strip=0.0, contrast=0.1), want) == [
        f"contrast 0.1 (wanted {want.contrast!r})", f"strip 0.0 (wanted {want.strip!r})"]
    nested = want.with_overrides(["model.head=pool"])
    assert build.recipe_diff(nested, want) == ["model.head 'pool' (wanted 'lstm')"]


def test_a_finished_run_of_another_recipe_in_out_stops_the_build(ckpt, tmp_path):
    from tumorlens.checkpoint import load_checkpoint

    ck = load_checkpoint(ckpt)
    run = tmp_path / "run"
    save_checkpoint(run / CKPT_FILE, ck.model, replace(ck.config, strip=0.0), {"reused_from": "runs/a"},
                    tuple(ck.classes))
    want = replace(ck.config, strip=0.5)
    with pytest.raises(SystemExit, match=r"holds a finished run of another recipe.*strip 0\.0 \(wanted 0\.5\)"):
        build.check_existing_run(run, want, None)
    # same recipe: fine without --reuse-run, and with the run it was taken from; not with another
    build.check_existing_run(run, replace(want, strip=0.0), None)
    build.check_existing_run(run, replace(want, strip=0.0), "runs/a")
    with pytest.raises(SystemExit, match="already holds finished weights, not those of runs/b"):
        build.check_existing_run(run, replace(want, strip=0.0), "runs/b")
    # an unfinished run (state file beside it) resumes: nothing to refuse yet
    (run / STATE_FILE).write_bytes(b"")
    build.check_existing_run(run, want, "runs/b")
    build.check_existing_run(tmp_path / "empty", want, "runs/b")
