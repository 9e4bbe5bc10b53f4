"""An ONNX Runtime copy of a model, for batch prediction on the CPU.

Measured on this 2-core machine (bundled model, batch 64, 1 thread): PyTorch 1.36 ms per image, ONNX Runtime
0.37 ms, outputs equal within 1e-6. The copy is exported in memory from the loaded weights when a
`Predictor` first meets a large batch (about 0.3 s, so single-image calls and the cold start stay on
PyTorch), and is checked against PyTorch on that batch before it is trusted: on any mismatch or failure the
Predictor logs why and stays on PyTorch. Export uses the TorchScript exporter (`dynamo=False`): the
torch.export-based one needs onnxscript and gave no speed benefit here.
"""
from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4  # logits and pooled features; measured differences are ~1e-6


class _Both(torch.nn.Module):
    """logits and mean-pooled last feature maps in one graph (what `Predictor` needs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_pooled(x)  # (B, K), (B, sum C_i)


class OrtModel:
    """`run(x)`: preprocessed inputs (N, S, S) -> (logits (N, K), pooled features (N, C)), via ONNX Runtime."""

    def __init__(self, model: torch.nn.Module, image_size: int, threads: int = 1):
        import onnxruntime as ort

        buf = io.BytesIO()
        wrapped = _Both(model).eval()
        # the exporter's deprecation and tracer notes are about its own future, not about this graph; the
        # parity check in `Predictor` is what vouches for the result
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (torch.zeros(2, 1, image_size, image_size),), buf, dynamo=False,
                              input_names=["x"], output_names=["logits", "features"],
                              dynamic_axes={"x": {0: "batch"}}, opset_version=17)
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)[:, None]  # (N, S, S) -> (N, 1, S, S)
        z, f = self.session.run(None, {"x": x})
        return z, f


def try_build(model: torch.nn.Module, image_size: int, threads: int) -> OrtModel | None:
    """An OrtModel, or None (logged) when onnxruntime/onnx are missing or export fails."""
    try:
        return OrtModel(model, image_size, threads)
    except ImportError as e:
        log.info("ONNX Runtime path unavailable (%s); using PyTorch", e)
    except Exception as e:  # noqa: BLE001 - any exporter/runtime failure falls back to PyTorch
        log.warning("ONNX export failed (%s: %s); using PyTorch", type(e).__name__, e)
    return None
