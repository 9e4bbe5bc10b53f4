"""Shared test set-up: one thread (measured faster for tiny models on 2 cores), a private cache dir."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KAGGLE = SHARED / "brain-tumor-mri-dataset"
FIGSHARE = SHARED / "figshare-brain-tumor"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def needs_kaggle():
    return pytest.mark.skipif(not KAGGLE.is_dir(), reason=f"real data not present: {KAGGLE} is absent")
