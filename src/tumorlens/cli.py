"""The `tumorlens` command. The CLI owns the terminal: tables, progress bars and one-line errors."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import __version__
from .config import DISCLAIMER, TumorlensError


def _table(rows: list[dict], cols: list[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return "(none)"
    cols = cols or list(rows[0])
    cells = [[str(c) for c in cols]] + [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _progress(total: int, desc: str):
    """A tqdm bar on stderr, fed with the number of items done so far; returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty())

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _load(data_dir: str, pre=None):
    from .config import Preprocess
    from .data import load_dataset, scan_dataset

    n = len(scan_dataset(data_dir))
    update, close = _progress(n, "decoding")
    try:
        ds = load_dataset(data_dir, pre or Preprocess(), progress=update)
    finally:
        close()
    if ds.skipped:
        print(f"skipped {len(ds.skipped)} unreadable file(s):", file=sys.stderr)
        for _, reason in ds.skipped[:20]:
            print(f"  {reason}", file=sys.stderr)
        if len(ds.skipped) > 20:
            print(f"  ... and {len(ds.skipped) - 20} more", file=sys.stderr)
    return ds


# ------------------------------------------------------------------------------------------ commands
def cmd_audit(a: argparse.Namespace) -> int:
    from .audit import find_duplicates

    t0 = time.perf_counter()
    ds = _load(a.data_dir)
    res = find_duplicates(ds, max_distance=a.max_distance, min_correlation=a.min_correlation)
    out = Path(a.out)
    csv_path = res.to_csv(out / "duplicates.csv")
    s = res.summary()
    print(f"Duplicate audit of {a.data_dir}: {len(ds.entries)} images, {s['groups']} groups of copies "
          f"holding {s['images_in_groups']} images")
    print(_table(s["rows"]))
    if s["test_images"]:
        pct = 100 * s["test_with_copy_in_train"] / s["test_images"]
        print(f"Testing images with a copy in Training: {s['test_with_copy_in_train']} of {s['test_images']} "
              f"({pct:.1f}%)")
    print(f"label-conflict groups: {s['label_conflict_groups']}")
    print(f"wrote {csv_path}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_split(a: argparse.Namespace) -> int:
    from .audit import find_duplicates
    from .split import make_split, read_groups_csv, split_table, write_split

    groups = read_groups_csv(a.groups) if a.groups else None
    ds = _load(a.data_dir)
    res = find_duplicates(ds)
    rows = make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                      res, a.strategy, a.test_size, a.val_size, a.seed, groups)
    write_split(rows, a.out)
    print(f"{a.strategy} split of {len(rows)} images (seed {a.seed})")
    print(_table(split_table(rows)))
    print(f"wrote {a.out}")
    return 0


# -------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tumorlens", description=f"Explainable brain-tumour MRI classification. "
                                                              f"{DISCLAIMER}")
    p.add_argument("--version", action="version", version=f"tumorlens {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("audit", help="find duplicate, near-duplicate and mirrored images and label conflicts")
    s.add_argument("data_dir")
    s.add_argument("--out", required=True, help="folder for duplicates.csv")
    s.add_argument("--max-distance", type=int, default=8, help="dHash-256 Hamming distance for near-copies")
    s.add_argument("--min-correlation", type=float, default=0.99, help="correlation for near-copies")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("split", help="write a train/val/test split.csv")
    s.add_argument("data_dir")
    s.add_argument("--strategy", choices=["official", "stratified", "clean"], required=True)
    s.add_argument("--test-size", type=float, default=0.2)
    s.add_argument("--val-size", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--groups", help="CSV path,group: images of one group stay on one side (clean)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_split)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(a.func(a) or 0)
    except TumorlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
