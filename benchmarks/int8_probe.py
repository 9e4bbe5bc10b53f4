"""What 8-bit integer inference (ONNX Runtime static quantization) would buy and cost, measured, not adopted.

    python benchmarks/int8_probe.py [--model CKPT] [--data ../shared/data/brain-tumor-mri-dataset]
                                    [--calib 512] [--out benchmarks/int8_probe.md]

The prediction path runs the model through ONNX Runtime in 32-bit floats (runtime.py), equal to PyTorch
within 1e-6. This script quantizes that same exported graph to 8 bits (QDQ format, weights per channel,
activation ranges from `--calib` training slices of the checkpoint's own split and their mirrors, min/max
calibration; `onnxruntime.quantization`) and reports, on the checkpoint's test part:
- the model's time per input at 1 thread, float against int8 (calls of 32 inputs, best of 5);
- end to end on 1,000 PNG slices with 2 worker processes (as `predict_speed.py`), the float and the int8 graph
  alternating 3 times each, the best of each (the int8 graph is handed to the workers in place of the float one);
- on the test slices, with the checkpoint's temperature, abstention threshold and feature-distance refusal
  (fitted on float outputs): accuracy, selective accuracy at 90% coverage, and how many slices change label or
  status (ok / uncertain / refused by the feature distance) between the two.
Needs onnxruntime's quantization tools (the `onnx` package) and ../shared/data. Timings depend on the machine's
load; the file records the thread counts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def quantize(onnx_f32: bytes, calib: np.ndarray, work: Path) -> tuple[bytes, float]:
    """The int8 (QDQ) copy of an exported float graph, and the seconds it took to make."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            if self.i >= len(calib):
                return None
            b = np.ascontiguousarray(calib[self.i:self.i + 64, None])  # (B, 1, S, S)
            self.i += 64
            return {"x": b}

    t = time.perf_counter()
    (work / "f32.onnx").write_bytes(onnx_f32)
    quant_pre_process(str(work / "f32.onnx"), str(work / "pre.onnx"), skip_symbolic_shape=True)
    quantize_static(str(work / "pre.onnx"), str(work / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax)
    return (work / "int8.onnx").read_bytes(), time.perf_counter() - t


def model_ms(session, x: np.ndarray, calls: int = 20) -> float:
    """Milliseconds per input, calls of len(x) inputs, best of 5 after a warm-up."""
    for _ in range(3):
        session.run(x)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            session.run(x)
        best = min(best, (time.perf_counter() - t) / calls / len(x) * 1e3)
    return best


def decisions(pr, z: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label, confidence and status (ok / uncertain / refused by the feature distance) per slice."""
    p = pr._softmax(z)
    label, conf = p.argmax(1), p.max(1)
    far = pr.ood.score(f) > pr.ood.threshold if pr.ood is not None else np.zeros(len(z), bool)
    status = np.where(far, "refused", np.where(conf < pr.threshold, "uncertain", "ok"))
    return label, conf, status


def selective_90(label: np.ndarray, conf: np.ndarray, status: np.ndarray, y: np.ndarray) -> float:
    """Accuracy on the 90% most confident of the slices the feature distance answers."""
    keep = status != "refused"
    order = np.argsort(-conf[keep], kind="stable")
    right = (label[keep] == y[keep])[order]
    return float(right[:int(np.ceil(0.9 * keep.sum()))].mean())


def end_to_end(pr, folder: Path, onnx: bytes, repeats: int = 1) -> float:
    """Images per second of `predict_paths` on `folder` with 2 workers running graph `onnx`."""
    from tumorlens.runtime import OrtSession

    pr._ort = OrtSession(onnx, threads=1)  # the graph handed to the workers (Predictor._predict_paths)
    best = float("inf")
    n = 0
    for _ in range(repeats):
        t = time.perf_counter()
        recs = [r.to_dict() for r in pr.predict_paths([str(folder)], batch=64, workers=2)]
        json.dumps(recs)
        best = min(best, time.perf_counter() - t)
        n = len(recs)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="checkpoint (default: the bundled model)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brain-tumor-mri-dataset"))
    ap.add_argument("--calib", type=int, default=512, help="training slices for the activation ranges")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "int8_probe.md"))
    a = ap.parse_args()
    from predict_speed import make_inputs
    from tumorlens.config import DISCLAIMER
    from tumorlens.data import load_dataset
    from tumorlens.prepare import model_outputs
    from tumorlens.predict import Predictor
    from tumorlens.runtime import OrtSession, export_onnx
    from tumorlens.split import SplitRow
    from tumorlens.train import select

    torch.set_num_threads(1)
    pr = Predictor(a.model)
    rows = [SplitRow(*r) for r in pr.ckpt.split_rows()]
    ds = load_dataset(a.data, pr.pre)
    train, test = select(ds, rows, "train"), select(ds, rows, "test")
    xtr, xte, y = train.x[:, 0].numpy(), test.x[:, 0].numpy(), test.y.numpy()
    calib = xtr[np.random.default_rng(0).choice(len(xtr), min(a.calib, len(xtr)), replace=False)]
    if pr.flip_average:  # the model sees mirrors too
        calib = np.concatenate([calib, calib[:, :, ::-1]])
    f32 = export_onnx(pr.model, pr.pre.size)
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        int8, q_s = quantize(f32, calib, td)
        s32, s8 = OrtSession(f32, 1), OrtSession(int8, 1)
        ms32, ms8 = model_ms(s32, xte[:32]), model_ms(s8, xte[:32])
        (z0, f0), (z1, f1) = (model_outputs(s.run, xte, pr.flip_average, 16) for s in (s32, s8))
        (td / "in").mkdir()
        make_inputs(td / "in")
        end_to_end(pr, td / "in", f32)  # warm-up: caches, imports
        speeds: dict[str, list[float]] = {"float": [], "int8": []}
        for _ in range(3):
            speeds["float"].append(end_to_end(pr, td / "in", f32))
            speeds["int8"].append(end_to_end(pr, td / "in", int8))
    d0, d1 = decisions(pr, z0, f0), decisions(pr, z1, f1)
    n = len(y)
    acc = [float((d[0] == y).mean()) for d in (d0, d1)]
    sel = [selective_90(*d, y) for d in (d0, d1)]
    label_changed = int((d0[0] != d1[0]).sum())
    status_changed = int((d0[2] != d1[2]).sum())
    moves: dict[str, int] = {}
    for s0, s1 in zip(d0[2], d1[2]):
        if s0 != s1:
            moves[f"{s0} -> {s1}"] = moves.get(f"{s0} -> {s1}", 0) + 1
    lines = ["# 8-bit inference: measured, not adopted", "", DISCLAIMER, "",
             f"Measured by `benchmarks/int8_probe.py` on {platform.machine()} with {os.cpu_count()} CPU cores, "
             f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}; model: "
             f"`{a.model or 'bundled'}` (sha256 {pr.ckpt.sha256[:12]}); activation ranges from "
             f"{len(calib)} training inputs; quantizing took {q_s:.1f} s.", "",
             "| | float (the prediction path) | int8 |", "|---|---|---|",
             f"| model ms per input (1 thread, calls of 32) | {ms32:.3f} | {ms8:.3f} |",
             f"| 1,000 PNG slices end to end, images/s (2 workers, best of 3 alternating runs) | "
             f"{max(speeds['float']):.0f} | {max(speeds['int8']):.0f} |",
             f"| test accuracy (n = {n}) | {acc[0]:.4f} | {acc[1]:.4f} |",
             f"| selective accuracy at 90% coverage | {sel[0]:.4f} | {sel[1]:.4f} |", "",
             f"All runs, images/s: float {', '.join(f'{v:.0f}' for v in speeds['float'])}; "
             f"int8 {', '.join(f'{v:.0f}' for v in speeds['int8'])}.", "",
             f"Between the two, on the {n} test slices: largest logit difference "
             f"{float(np.abs(z0 - z1).max()):.3f} (mean {float(np.abs(z0 - z1).mean()):.4f}); "
             f"**{label_changed} change label and {status_changed} change status** "
             f"({', '.join(f'{k} {v}' for k, v in sorted(moves.items())) or 'none'}). The temperature, the "
             "abstention threshold and the feature-distance threshold were fitted on float outputs.", "",
             "Not adopted: an int8 path for large batches beside PyTorch for single files would give the same "
             "file different answers depending on how many files come with it. Adopting it means one int8 graph "
             "for every call (stored in the checkpoint, so that a single file does not pay for quantizing), "
             "calibration, abstention and refusal fitted on its outputs, and every recorded figure measured "
             "again."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
