"""Load test of `tumorlens serve`: predict + explain requests of one 512x512 JPEG against a local server.

    python benchmarks/serve_load.py [--model CKPT] [--threads 1] [--out benchmarks/serve_load.md]

The server runs as a subprocess (`python -m tumorlens.cli_serve`) on 127.0.0.1 only, on a free port, with
OMP_NUM_THREADS set to --threads (0: torch's default). All traffic goes to that address. Phases, in order:
500 sequential requests, 200 requests from 8 concurrent clients, then sequential requests up to 1,000 in
all. Each request is `POST /api/predict?explain=true` with the JPEG in the field `files` (answer: the record
plus three base64 PNG layers); a request counts as an error unless it answers 200 with one record that
carries `overlay_png`. Latency is measured from sending the request to reading the whole answer, on kept-alive
connections. The server's resident memory (VmRSS from /proc/PID/status) is read after 100 and after 1,000
requests. Without --model the bundled model is used, or, when it is missing, a model of the default
architecture (untrained: the compute is the same) finalized on phantoms.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BOUNDARY = "tumorlens-load-boundary"
TARGET_P95_MS = 150.0
TARGET_RSS_GROWTH_MB = 50.0


def phantom_jpeg(ckpt: Path) -> tuple[bytes, str]:
    """A 512x512 phantom JPEG the model answers (not rejected), so every request runs Grad-CAM too."""
    from tumorlens.predict import Predictor
    from tumorlens.synthetic import _slice_rng, make_slice

    pr = Predictor(ckpt)
    for i in range(20):
        buf = io.BytesIO()
        Image.fromarray(make_slice("glioma", _slice_rng(5, 0, i), 512)[0]).save(buf, format="JPEG", quality=90)
        rec = pr.predict_bytes(buf.getvalue(), "phantom.jpg")[0]
        if rec.status in ("ok", "uncertain"):
            return buf.getvalue(), rec.status
    raise SystemExit("the model rejects every phantom tried; pass another --model")


def multipart(data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"phantom.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


class Client:
    """One kept-alive connection to the local server."""

    def __init__(self, port: int, body: bytes):
        self.port, self.body = port, body
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                        "Content-Length": str(len(body))}

    def request(self) -> tuple[float, bool, bytes]:
        t = time.perf_counter()
        try:
            self.conn.request("POST", "/api/predict?explain=true", body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            payload = resp.read()
            ok = resp.status == 200 and payload.count(b'"overlay_png"') == 1
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            payload, ok = b"", False
        return 1e3 * (time.perf_counter() - t), ok, payload

    def close(self) -> None:
        self.conn.close()


def sequential(port: int, body: bytes, n: int, pid: int, rss_at: dict[int, dict], done0: int) -> dict:
    c = Client(port, body)
    lat, errors = [], 0
    for i in range(n):
        ms, ok, _ = c.request()
        lat.append(ms)
        errors += not ok
        if done0 + i + 1 in rss_at:
            rss_at[done0 + i + 1] = rss_mb(pid)
    c.close()
    return {"latencies": lat, "errors": errors}


def concurrent(port: int, body: bytes, n: int, clients: int) -> dict:
    lock = threading.Lock()
    left = [n]
    lat: list[float] = []
    errors = [0]

    def worker() -> None:
        c = Client(port, body)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            ms, ok, _ = c.request()
            with lock:
                lat.append(ms)
                errors[0] += not ok
        c.close()

    t = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return {"latencies": lat, "errors": errors[0], "seconds": time.perf_counter() - t}


def pct(a: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(a), q)) if a else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint (default: the bundled model, else an untrained default one)")
    ap.add_argument("--threads", type=int, default=1, help="server torch threads via OMP_NUM_THREADS (0: default)")
    ap.add_argument("--sequential", type=int, default=500)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--total", type=int, default=1000, help="requests in all (sequential ones fill up the rest)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "serve_load.md"))
    a = ap.parse_args()

    from tumorlens.checkpoint import BUNDLED
    from tumorlens.config import DISCLAIMER

    tmp = tempfile.TemporaryDirectory(prefix="tumorlens-load-")
    if a.model:
        ckpt, model_desc = Path(a.model), f"`{Path(a.model).name}`"
    elif BUNDLED.exists():
        ckpt, model_desc = BUNDLED, f"the bundled model `{BUNDLED.name}`"
    else:
        print("bundled model missing: building an untrained model of the default architecture", file=sys.stderr)
        from predict_speed import default_checkpoint  # same folder: the benchmarks share one untrained model

        ckpt = default_checkpoint(Path(tmp.name))
        model_desc = "default architecture, untrained (the bundled model is not built yet; the compute is the same)"
    from tumorlens.checkpoint import read_metadata

    mc = read_metadata(ckpt)["config"]["model"]
    model_desc += (f"; channels {'-'.join(map(str, mc['channels']))}, "
                   f"{'bi' if mc.get('bidirectional') else ''}LSTM {mc.get('lstm_hidden')}")
    jpeg, status = phantom_jpeg(ckpt)
    body = multipart(jpeg)

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if a.threads > 0:
        env["OMP_NUM_THREADS"] = str(a.threads)
    log_path = Path(tmp.name) / "server.log"
    with open(log_path, "w") as log_f:
        proc = subprocess.Popen([sys.executable, "-m", "tumorlens.cli_serve", "--model", str(ckpt), "--host", HOST,
                                 "--port", str(port)], stdout=log_f, stderr=subprocess.STDOUT, env=env, cwd=tmp.name)
    try:
        deadline = time.monotonic() + 120
        health = None
        while health is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log_path.read_text()}")
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=5)
                c.request("GET", "/api/health")
                health = json.loads(c.getresponse().read())
                c.close()
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.2)
        rss_start = rss_mb(proc.pid)
        first = Client(port, body)
        _, ok, payload = first.request()
        first.close()
        rec = json.loads(payload)[0] if ok else {}
        resp_kb = len(payload) / 1024

        n_tail = max(0, a.total - a.sequential - a.concurrent - 1)
        mark = min(100, a.sequential)
        rss_at: dict[int, dict] = {mark: {}, a.total: {}}
        print(f"server pid {proc.pid} on {HOST}:{port}, torch threads {health.get('torch_threads')}; "
              f"{a.sequential} sequential ...", file=sys.stderr)
        seq = sequential(port, body, a.sequential, proc.pid, rss_at, 1)
        print(f"{a.concurrent} concurrent ({a.clients} clients) ...", file=sys.stderr)
        conc = concurrent(port, body, a.concurrent, a.clients)
        print(f"{n_tail} more sequential ...", file=sys.stderr)
        tail = sequential(port, body, n_tail, proc.pid, rss_at, 1 + a.sequential + a.concurrent)
        if not rss_at[a.total]:
            rss_at[a.total] = rss_mb(proc.pid)
        server_log = log_path.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    total = 1 + a.sequential + a.concurrent + n_tail
    errors = seq["errors"] + conc["errors"] + tail["errors"] + (0 if ok else 1)
    s_lat = seq["latencies"]
    c_lat = conc["latencies"]
    mark = min(100, a.sequential)
    growth = rss_at[a.total]["VmRSS"] - rss_at[mark]["VmRSS"]
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    import torch

    threads_txt = (f"{health.get('torch_threads')} (OMP_NUM_THREADS={a.threads})" if a.threads > 0
                   else f"{health.get('torch_threads')} (torch's default)")
    lines = [
        "# Web server load (`tumorlens serve`)", "", DISCLAIMER, "",
        f"Measured by `benchmarks/serve_load.py` on {platform.machine()} with {os.cpu_count()} CPU cores "
        f"(load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end), torch {torch.__version__}, "
        f"Python {platform.python_version()}; server torch threads: **{threads_txt}**; uvicorn in a subprocess "
        f"on 127.0.0.1, access log off.", "",
        f"- model: {model_desc}",
        f"- request: `POST /api/predict?explain=true`, one 512x512 phantom JPEG ({len(jpeg) / 1024:.0f} KB, "
        f"from `tumorlens.synthetic`; answered `{rec.get('status', status)}`), answer {resp_kb:.0f} KB "
        f"(record + image, heatmap and overlay PNGs in base64)",
        f"- requests: {total} in all ({1} warm-up, {a.sequential} sequential, {a.concurrent} from {a.clients} "
        f"concurrent clients, {n_tail} sequential), **errors: {errors}**", "",
        "| phase | requests | p50 ms | p95 ms | p99 ms | max ms | throughput req/s |",
        "|---|---|---|---|---|---|---|",
        f"| sequential | {len(s_lat)} | {pct(s_lat, 50):.1f} | **{pct(s_lat, 95):.1f}** | {pct(s_lat, 99):.1f} | "
        f"{max(s_lat):.1f} | {1e3 * len(s_lat) / sum(s_lat):.1f} |",
        f"| concurrent ({a.clients} clients) | {len(c_lat)} | {pct(c_lat, 50):.1f} | {pct(c_lat, 95):.1f} | "
        f"{pct(c_lat, 99):.1f} | {max(c_lat):.1f} | {len(c_lat) / conc['seconds']:.1f} |",
        f"| sequential, after | {len(tail['latencies'])} | {pct(tail['latencies'], 50):.1f} | "
        f"{pct(tail['latencies'], 95):.1f} | {pct(tail['latencies'], 99):.1f} | "
        f"{max(tail['latencies'] or [float('nan')]):.1f} | - |", "",
        "Server resident memory (VmRSS):", "",
        f"- after loading the model: {rss_start['VmRSS']:.1f} MB",
        f"- after {mark} requests: {rss_at[mark]['VmRSS']:.1f} MB",
        f"- after {a.total} requests: {rss_at[a.total]['VmRSS']:.1f} MB (growth {growth:+.1f} MB; "
        f"peak VmHWM {rss_at[a.total]['VmHWM']:.1f} MB)", "",
        "Targets:", "",
        f"- p95 sequential <= {TARGET_P95_MS:.0f} ms: **{'met' if pct(s_lat, 95) <= TARGET_P95_MS else 'MISSED'}**",
        f"- memory after {a.total} <= after {mark} + {TARGET_RSS_GROWTH_MB:.0f} MB: "
        f"**{'met' if growth <= TARGET_RSS_GROWTH_MB else 'MISSED'}**",
        f"- zero errors: **{'met' if errors == 0 else 'MISSED'}**", "",
        "Notes:", "",
        "- Requests are served one model call at a time (the Grad-CAM hooks live on the shared model); with 8 "
        "clients the latency is mostly queueing, while decoding, PNG rendering and JSON of one request overlap "
        "with the model work of another.",
        "- The machine is shared with training jobs, so absolute numbers vary with its load.", "",
    ]
    if server_log.strip():
        lines += ["Server output (stderr):", "", "```", *server_log.strip().splitlines()[-15:], "```", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))
    tmp.cleanup()
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    from tumorlens.cli import guarded

    sys.exit(guarded(main))
