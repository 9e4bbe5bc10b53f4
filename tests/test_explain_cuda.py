"""Grad-CAM on CUDA: cuDNN refuses the LSTM's backward pass in eval mode, so the explainer switches cuDNN
off inside itself (never BatchNorm/dropout into training mode) and restores the flag. Skips without a GPU;
run on a GPU machine with `PYTHONPATH=src python -m pytest tests/test_explain_cuda.py`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tumorlens.checkpoint import load_checkpoint
from tumorlens.explain import METHODS, explain_batch
from tumorlens.synthetic import make_arrays

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("method", METHODS)
def test_bundled_model_explains_on_cuda_in_eval_mode_like_on_cpu(method):
    x, _, _ = make_arrays(4, size=64, seed=0)
    xt = torch.from_numpy(x).unsqueeze(1)
    cpu_model = load_checkpoint().model.eval()
    cpu_maps, cpu_probs = explain_batch(cpu_model, xt, method=method)
    gpu_model = load_checkpoint().model.eval().cuda()
    before = (torch.backends.cudnn.enabled, torch.is_grad_enabled())
    # the trap itself: with cuDNN on, the LSTM's backward pass is refused in eval mode
    with pytest.raises(RuntimeError, match="(?i)cudnn"):
        out = gpu_model(xt.cuda().requires_grad_())
        out.sum().backward()
    maps, probs = explain_batch(gpu_model, xt.cuda(), method=method)
    assert (torch.backends.cudnn.enabled, torch.is_grad_enabled()) == before
    assert not any(m.training for m in gpu_model.modules())
    assert maps.shape == cpu_maps.shape and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(probs, cpu_probs, atol=1e-4)
    np.testing.assert_allclose(maps, cpu_maps, atol=2e-3)
