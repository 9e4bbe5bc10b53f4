"""Prediction speed: 1,000 PNG slices end to end, and the cold start of `tumorlens predict one.jpg`.

    python benchmarks/predict_speed.py [--model CKPT] [--threads 1 2] [--out benchmarks/predict_speed.md]

End to end = expand the folder, decode each PNG, run the refusal statistics, preprocess, run the model in
batches of 64 with the feature-distance check, build the records and serialise them to JSON. The inputs are
256x256 8-bit phantom PNGs (200 distinct slices written 5 times each). Without --model, a model of the
default architecture (untrained: the compute is the same) is finalized on phantoms and used.
Cold start runs the CLI in a fresh interpreter 5 times and reports the median wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLI = """import argparse, sys
import tumorlens.cli as cli
_b = cli.build_parser
def bp():
    p = _b()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    if "predict" not in sub.choices:
        from tumorlens.cli_predict import add_parsers
        add_parsers(sub)
    return p
cli.build_parser = bp
sys.exit(cli.main(sys.argv[1:]))
"""


def make_inputs(d: Path, n: int = 1000, distinct: int = 200) -> list[Path]:
    from tumorlens.config import CLASSES
    from tumorlens.synthetic import _slice_rng, make_slice

    imgs = [make_slice(CLASSES[i % 4], _slice_rng(7, i % 4, i), 256)[0] for i in range(distinct)]
    paths = []
    for i in range(n):
        p = d / f"slice_{i:04d}.png"
        Image.fromarray(imgs[i % distinct]).save(p)
        paths.append(p)
    return paths


def default_checkpoint(d: Path) -> Path:
    from tumorlens.checkpoint import save_checkpoint
    from tumorlens.config import CLASSES, TrainConfig
    from tumorlens.data import preprocess_array
    from tumorlens.model import build_model
    from tumorlens.refusal import finalize_checkpoint
    from tumorlens.synthetic import _slice_rng, make_slice

    cfg = TrainConfig()
    torch.manual_seed(0)
    ck = save_checkpoint(d / "model.safetensors", build_model(cfg.model, cfg.preprocess.size).eval(), cfg,
                         {"calibration": {"temperature": 1.0}})
    xs, ys = [], []
    for ci, label in enumerate(CLASSES):
        for i in range(40):
            xs.append(preprocess_array(make_slice(label, _slice_rng(1, ci, i), 128)[0].astype(np.float32),
                                       cfg.preprocess)[0])
            ys.append(ci)
    x, y = np.stack(xs), np.array(ys)
    finalize_checkpoint(ck, x[::2], x[1::2], y[1::2], y_train=y[::2])
    return ck


def default_name() -> str:
    from tumorlens.config import TrainConfig

    m = TrainConfig().model
    return (f"default architecture (channels {'-'.join(map(str, m.channels))}, "
            f"{'bi' if m.bidirectional else ''}LSTM {m.lstm_hidden}), untrained")


def end_to_end(ckpt: Path, folder: Path, threads: int, workers: int, backend: str, repeats: int = 3,
               mirror: bool | None = None) -> dict:
    """mirror: override the checkpoint's test-time mirroring (None: as the checkpoint says)."""
    from tumorlens.predict import Predictor
    from tumorlens.readers import read_frames
    from tumorlens.refusal import check_image

    torch.set_num_threads(threads)
    pr = Predictor(ckpt, backend=backend)
    if mirror is not None:
        pr.flip_average = mirror
    list(pr.predict_paths([str(folder)], batch=64, workers=workers))  # warm-up: caches, ONNX export, imports
    best = float("inf")
    n = 0
    for _ in range(repeats):
        t = time.perf_counter()
        recs = [r.to_dict() for r in pr.predict_paths([str(folder)], batch=64, workers=workers)]
        json.dumps(recs)
        best = min(best, time.perf_counter() - t)
        n = len(recs)
    # stage breakdown, one pass each
    paths = sorted(folder.glob("*.png"))
    t = time.perf_counter()
    frames = [read_frames(p, draft=4 * pr.pre.size)[0] for p in paths]
    t_dec = time.perf_counter() - t
    t = time.perf_counter()
    for f in frames:
        check_image(f.gray, f.info)
    t_stats = time.perf_counter() - t
    t = time.perf_counter()
    xs = np.stack([pr.preprocess(f.gray)[0] for f in frames])
    t_pre = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, len(xs), 64):
        pr.logits_and_features(xs[i:i + 64])
    t_model = time.perf_counter() - t
    statuses = {s: sum(1 for r in recs if r["status"] == s) for s in ("ok", "uncertain", "rejected", "error")}
    return {"threads": threads, "workers": workers, "backend": backend, "mirror": pr.flip_average, "n": n, "seconds": best, "images_per_s": n / best, "statuses": statuses,
            "ms_per_image": {"decode": 1e3 * t_dec / n, "refusal_stats": 1e3 * t_stats / n,
                             "preprocess": 1e3 * t_pre / n, "model_batch64": 1e3 * t_model / n}}


def cold_start(ckpt: Path, image: Path, runs: int = 5, threads: int = 1) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", CLI, "predict", "--model", str(ckpt), str(image)],
                           capture_output=True, text=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t)
        if r.returncode not in (0, 1):
            raise SystemExit(f"cold start run failed: {r.stderr}")
    imp = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], env=env, check=True)
        imp.append(time.perf_counter() - t)
    lazy = subprocess.run([sys.executable, "-c", CLI.replace("sys.exit(cli.main(sys.argv[1:]))", "cli.main(sys.argv[1:])\n"
                           "print('modules:' + ','.join(m for m in ('matplotlib', 'scipy', 'pydicom', 'nibabel') if m in sys.modules))"),
                           "predict", "--model", str(ckpt), str(image)], capture_output=True, text=True, env=env, cwd=ROOT)
    return {"runs": runs, "median_s": statistics.median(times), "min_s": min(times),
            "import_torch_median_s": statistics.median(imp),
            "heavy_modules_loaded": next((ln[8:] for ln in lazy.stdout.splitlines() if ln.startswith("modules:")), "?")}


def explain_speed(ckpt: Path, folder: Path, threads: int, repeats: int = 5) -> dict:
    """Heatmaps (the default method) for a batch of 64 preprocessed slices: median seconds."""
    from tumorlens.explain import DEFAULT_METHOD, explain_batch
    from tumorlens.predict import Predictor

    torch.set_num_threads(threads)
    pr = Predictor(ckpt)
    paths = sorted(folder.glob("*.png"))[:64]
    x = torch.from_numpy(np.stack([pr.preprocess(np.asarray(Image.open(p), dtype=np.float32))[0]
                                   for p in paths])).unsqueeze(1)
    explain_batch(pr.model, x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        explain_batch(pr.model, x)
        times.append(time.perf_counter() - t)
    return {"threads": threads, "method": DEFAULT_METHOD, "median_s": statistics.median(times), "min_s": min(times)}


def explain_cold(ckpt: Path, image: Path, out: Path, runs: int = 3, threads: int = 1) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    times = []
    for i in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "tumorlens", "explain", "--model", str(ckpt), str(image),
                            "--out", str(out / f"x{i}")], capture_output=True, text=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"explain cold start failed: {r.stderr}")
    return {"runs": runs, "median_s": statistics.median(times), "min_s": min(times)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[2],
                    help="worker-process counts to time (with 1 model thread in the main process)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "predict_speed.md"))
    a = ap.parse_args()
    from tumorlens.config import DISCLAIMER

    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        (td / "in").mkdir()
        make_inputs(td / "in", a.n)
        ckpt = Path(a.model) if a.model else default_checkpoint(td)
        one = td / "one.jpg"
        Image.open(td / "in" / "slice_0000.png").convert("RGB").save(one, quality=92)
        rows = [end_to_end(ckpt, td / "in", t, 0, "torch") for t in a.threads]
        rows += [end_to_end(ckpt, td / "in", t, 0, "auto") for t in a.threads]
        rows += [end_to_end(ckpt, td / "in", 1, w, "auto") for w in a.workers]
        if rows[-1]["mirror"]:  # what the test-time mirroring costs, measured beside it
            rows += [end_to_end(ckpt, td / "in", 1, w, "auto", mirror=False) for w in a.workers]
        cold = cold_start(ckpt, one)
        expl = [explain_speed(ckpt, td / "in", t) for t in a.threads]
        expl_cold = explain_cold(ckpt, one, td)
    load = os.getloadavg()
    lines = ["# Prediction speed", "", f"{DISCLAIMER}", "",
             f"Measured by `benchmarks/predict_speed.py` on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"(load average {load[0]:.1f} at the end), "
             f"torch {torch.__version__}, Python {platform.python_version()}; model: "
             f"{'`' + a.model + '`' if a.model else default_name()}.",
             "", f"## {a.n} PNG slices end to end (256x256, decode -> refusal checks -> model -> JSON)", "",
             "seconds: the best of 3 runs after a warm-up run. Stage columns are single-process timings of each "
             "stage alone (with that row's backend and threads).",
             "",
             "| model threads | worker processes | backend | mirrored | seconds | images/s | decode ms/img | "
             "refusal stats ms/img | preprocess ms/img | model ms/img (batch 64) | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["ms_per_image"]
        lines.append(f"| {r['threads']} | {r['workers']} | {r['backend']} | {'yes' if r['mirror'] else 'no'} | "
                     f"{r['seconds']:.2f} | "
                     f"**{r['images_per_s']:.0f}** | {m['decode']:.2f} | "
                     f"{m['refusal_stats']:.2f} | {m['preprocess']:.2f} | {m['model_batch64']:.2f} | "
                     f"{', '.join(f'{k} {v}' for k, v in r['statuses'].items() if v)} |")
    lines += ["", "backend `auto` = ONNX Runtime for batches of 16 or more (exported from the loaded weights and "
              "checked against PyTorch on the first batch), `torch` = PyTorch only. "
              "With worker processes and `auto`, each worker runs the model (ONNX Runtime, 1 thread) on the "
              "files it read, and the main process only builds the records; with `torch` the main process runs "
              "the model. The CLI's default is `auto` with one worker process per core for 128 or more files. "
              "mirrored = test-time mirroring (each slice and its left-right mirror through the model, as the "
              "checkpoint predicts); a `no` row switches it off to show its cost, and its statuses differ because "
              "the checkpoint's abstention and refusal were fitted on mirrored averages.",
              "", "Target: >= 500 images/s.", "",
              "## Cold start of `tumorlens predict --model CKPT one.jpg`", "",
              f"- median of {cold['runs']} runs: **{cold['median_s']:.2f} s** (min {cold['min_s']:.2f} s), "
              f"OMP_NUM_THREADS=1",
              f"- of which `import torch` alone: {cold['import_torch_median_s']:.2f} s (median of 3)",
              f"- heavy optional modules loaded for a JPEG: `{cold['heavy_modules_loaded'] or 'none'}` "
              f"(matplotlib, scipy, pydicom and nibabel are imported only when needed)",
              "", "Target: <= 2 s.", "",
              "## Heatmaps", "",
              *[f"- a batch of 64 slices, method `{e['method']}`, {e['threads']} torch thread(s): "
                f"**{e['median_s']:.3f} s** (median of 5; min {e['min_s']:.3f} s)" for e in expl],
              f"- cold start of `tumorlens explain --model CKPT one.jpg --out DIR` (overlay PNG, map NPY, record "
              f"JSON): **{expl_cold['median_s']:.2f} s** (median of {expl_cold['runs']}), OMP_NUM_THREADS=1",
              "", "Targets: <= 0.5 s per batch of 64; <= 3 s cold start.", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
