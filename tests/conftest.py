"""Shared test set-up: one thread (measured faster for tiny models on 2 cores), a private cache dir, and the
tiny trained checkpoint (`ckpt`) that the predict / serve tests share."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KAGGLE = SHARED / "brain-tumor-mri-dataset"
FIGSHARE = SHARED / "figshare-brain-tumor"


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts on one thread, whatever an earlier test (a training run with `threads`) set."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The tiny phantom-trained checkpoint of `predict_helpers.tiny_checkpoint` (built once per session)."""
    from predict_helpers import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("ck"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def needs_kaggle():
    return pytest.mark.skipif(not KAGGLE.is_dir(), reason=f"real data not present: {KAGGLE} is absent")


def load_benchmark(name: str):
    """A script of benchmarks/ imported as a module (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
