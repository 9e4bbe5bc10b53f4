"""What the probe-set benchmarks share (fresh_probes.py, blind_probes.py): the probe folder's checks, scoring every
probe through the prediction path, naming the layer that refused it, and the command line around a generator and a
report. Each script keeps its own generator and report. Research use only - not a medical device.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("rejected", "ok", "uncertain", "error")
LAYERS = ("look-alike detector", "feature distance", "image checks or headers")


def layer(reason: str | None) -> str:
    """The refusal layer a rejected record's reason names (see `Predictor`): the look-alike detector and the
    feature distance share one reason prefix, the look-alike's naming its score; anything else comes from the
    image checks or the file's headers."""
    from tumorlens.predict import DISTANCE_REASON

    reason = reason or ""
    if reason.startswith(DISTANCE_REASON):
        return LAYERS[0] if "look-alike score" in reason else LAYERS[1]
    return LAYERS[2]


def score(folder: Path, model: str | None, skip: tuple[str, ...] = (),
          describe: dict[str, str] | None = None) -> tuple[list[dict], object]:
    """Every probe under `folder` (but the files named in `skip`, relative to it) through
    `Predictor.predict_paths`; one dict per record (path relative to the folder, category, status, label,
    confidence, reason, and its description from `describe` when given) and the checkpoint used."""
    from tumorlens.predict import Predictor

    pr = Predictor(model)
    files = sorted(str(p) for p in folder.rglob("*")
                   if p.is_file() and p.relative_to(folder).as_posix() not in skip)
    rows = []
    for rec in pr.predict_paths(files):
        rel = Path(os.path.relpath(rec.path, folder)).as_posix()
        row = {"path": rel, "category": rel.split("/")[0], "status": rec.status, "label": rec.label,
               "confidence": rec.confidence, "reason": rec.reason}
        if describe is not None:
            row["description"] = describe.get(rel, "")
        rows.append(row)
    return rows, pr.ckpt


def _inside(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


def check_probes_dir(d: str) -> Path:
    """The probe folder, resolved; exits with one line for a folder inside the repository or ../shared (the
    probes are not the project's files, nor data), or one that holds files (they would be scored too)."""
    p = Path(d).expanduser().resolve()
    for folder, what in ((ROOT.resolve(), "the repository"), ((ROOT.parent / "shared").resolve(), "../shared")):
        if _inside(p, folder):
            sys.exit(f"--probes {d}: inside {what} ({folder}); choose a folder outside it")
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        sys.exit(f"--probes {d}: not an empty folder; choose an empty or absent one")
    return p


def run(argv: list[str] | None, script: str, doc: str, groups: tuple[str, ...], default_out: Path,
        generate: Callable[[Path, tuple[str, ...]], tuple[dict[str, int], list[str]]],
        score_folder: Callable[[Path, str | None], tuple[list[dict], object]],
        report: Callable[..., str]) -> None:
    """The command line of a probe-set benchmark: parse --model/--probes/--out/--threads/--only, generate the
    probes (into a temporary folder by default, removed at the end), score them, write the report atomically."""
    from tumorlens.fileio import atomic_write_text

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--probes", default=None, help="folder for the probes (default: a temporary one, removed)")
    ap.add_argument("--out", default=str(default_out), help="Markdown report (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    ap.add_argument("--only", default=None, help=f"comma-separated probe groups ({', '.join(groups)}); default all")
    a = ap.parse_args(argv)
    if a.threads < 1:
        sys.exit(f"--threads {a.threads}: must be at least 1")
    chosen = groups if a.only is None else tuple(g.strip() for g in a.only.split(",") if g.strip())
    if set(chosen) - set(groups) or not chosen:
        sys.exit(f"--only {a.only}: choose among {', '.join(groups)}")
    out = Path(a.out)
    if not out.parent.is_dir():
        sys.exit(f"--out {a.out}: folder {out.parent} does not exist")
    probes = check_probes_dir(a.probes) if a.probes is not None else None
    import torch

    torch.set_num_threads(a.threads)
    command = f"python benchmarks/{script}"
    for opt in ("model", "probes", "out", "threads", "only"):
        v = getattr(a, opt)
        if v is not None and v != ap.get_default(opt):
            command += f" --{opt} {v}"
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix=f"tumorlens-{Path(script).stem.replace('_', '-')}-") if probes is None else None
    folder = probes or Path(tmp)
    try:
        counts, notes = generate(folder, chosen)
        rows, ckpt = score_folder(folder, a.model)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.time() - t0
    model = Path(ckpt.path).resolve()
    model_s = model.relative_to(ROOT).as_posix() if _inside(model, ROOT.resolve()) else str(model)
    atomic_write_text(out, report(rows, command, model_s, ckpt.sha256, a.threads, seconds, notes))
    k = Counter(r["status"] for r in rows)
    print(f"wrote {out}: {len(rows)} probes ({sum(counts.values())} generated), "
          + ", ".join(f"{s} {k[s]}" for s in STATUSES) + f"; {seconds:.0f} s. "
          "Research use only - not a medical device.")


def count_row(name: str, k: Counter, bold: bool = False) -> str:
    """A row of the answers-by-category table: name, n, then the count of each status."""
    b = "**" if bold else ""
    return f"| {b}{name}{b} | {b}{sum(k.values())}{b} | " + " | ".join(f"{b}{k[s]}{b}" for s in STATUSES) + " |"


def report_head(title: str, about: str, rows: list[dict], command: str, model: str, sha256: str, threads: int,
                seconds: float, notes: list[str] = ()) -> list[str]:
    """A report's opening - title, disclaimer, how it was measured, what the set is, notes - and its
    answers-by-category table, down to the total row."""
    from tumorlens.config import DISCLAIMER

    L = [f"# {title}", "", DISCLAIMER, "",
         f"Measured by `{command}` with model `{model}` (sha256 {sha256[:12]}); torch threads {threads}; "
         f"{len(rows)} probes; {seconds:.0f} s wall (generating and scoring).", "", about, ""]
    L += list(notes) + ([""] if notes else [])
    L += ["## Answers by category", "", "| category | n | " + " | ".join(STATUSES) + " |",
          "|---|" + "---:|" * (1 + len(STATUSES))]
    total: Counter = Counter()
    for c in sorted({r["category"] for r in rows}):
        k = Counter(r["status"] for r in rows if r["category"] == c)
        total.update(k)
        L.append(count_row(c, k))
    return L + [count_row("total", total, bold=True)]


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def unrefused_table(rows: list[dict], described: bool = False) -> list[str]:
    """The "Probes not refused" section's lines: each probe not rejected with its status, label and confidence
    (and its description, when `described`), or one line saying every probe was refused."""
    kept = [r for r in rows if r["status"] != "rejected"]
    if not kept:
        return ["None: every probe was refused."]
    extra = " description |" if described else ""
    L = ["| probe | status | label | confidence |" + extra, "|---|---|---|---:|" + ("---|" if described else "")]
    for r in kept:
        conf = "-" if r["confidence"] is None else f"{r['confidence']:.3f}"
        desc = f" {_cell(r.get('description') or '-')} |" if described else ""
        L.append(f"| {_cell(r['path'])} | {r['status']} | {r['label'] or '-'} | {conf} |" + desc)
    return L
