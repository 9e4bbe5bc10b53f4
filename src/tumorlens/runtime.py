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
import threading
import warnings
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4  # logits and pooled features; measured differences are ~1e-6
# one export at a time in a process: torch's exporter keeps global state ("GLOBALS.in_onnx_export must be
# False" when two threads exported at once), and warnings.catch_warnings is not thread-safe either (two threads
# left the process with every warning ignored; a library audit)
_EXPORT_LOCK = threading.Lock()

# torch is imported only to export: `OrtSession` runs an exported graph without it, so the worker processes
# of `Predictor.predict_paths` (prepare.py) can run the model while staying torch-free


def export_onnx(model: Any, image_size: int) -> bytes:
    """The ONNX graph (bytes) of `model.forward_with_pooled`: x (N, 1, S, S) -> logits (N, K), features (N, D)."""
    import torch

    class _Both(torch.nn.Module):
        """logits and every block's mean-pooled output in one graph (what `Predictor` needs)."""

        def __init__(self, m: torch.nn.Module):
            super().__init__()
            self.model = m

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model.forward_with_pooled(x)  # (B, K), (B, sum C_i)

    buf = io.BytesIO()
    # the exporter's deprecation and tracer notes are about its own future, not about this graph; the
    # parity check in `Predictor` is what vouches for the result
    with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Both(model).eval(), (torch.zeros(2, 1, image_size, image_size),), buf, dynamo=False,
                          input_names=["x"], output_names=["logits", "features"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17)
    return buf.getvalue()


class OrtSession:
    """`run(x)`: preprocessed inputs (N, S, S) -> (logits (N, K), pooled features (N, D)), via ONNX Runtime,
    from an exported graph (`onnx`, bytes)."""

    def __init__(self, onnx: bytes, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.onnx = onnx
        self.session = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)[:, None]  # (N, S, S) -> (N, 1, S, S)
        z, f = self.session.run(None, {"x": x})
        return z, f


class OrtModel(OrtSession):
    """An OrtSession exported from a loaded model (`model.forward_with_pooled`)."""

    def __init__(self, model: Any, image_size: int, threads: int = 1):
        super().__init__(export_onnx(model, image_size), threads)


def try_build(model: Any, image_size: int, threads: int) -> OrtModel | None:
    """An OrtModel, or None (logged) when onnxruntime/onnx are missing or export fails."""
    try:
        return OrtModel(model, image_size, threads)
    except ImportError as e:
        log.info("ONNX Runtime path unavailable (%s); using PyTorch", e)
    except Exception as e:  # noqa: BLE001 - any exporter/runtime failure falls back to PyTorch
        log.warning("ONNX export failed (%s: %s); using PyTorch", type(e).__name__, e)
    return None
