"""Train/val/test splits that keep copies and patients on one side.

Strategies:
  official    the dataset's own Training/ and Testing/ folders (for comparison with papers only: on the
              Kaggle set 75% of Testing has a copy in Training);
  stratified  the reference design's stratified random split over single images (leaks on Kaggle);
  clean       stratified over *groups*: the audit's duplicate clusters merged with the keys of a groups
              CSV (`path,group`), so no group has members on two sides.
In every strategy `val` is carved from the train side by the same group-aware procedure, with the
audit's duplicate clusters (and the CSV groups, if given) as groups, for early stopping and calibration.
"""
from __future__ import annotations

import csv
import io
import itertools
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audit import AuditResult, UnionFind
from .fileio import atomic_write_text, read_user_text
from .config import CLASSES, TumorlensError
from .data import _SPLIT_DIRS, canonical_class

log = logging.getLogger(__name__)

STRATEGIES = ("official", "stratified", "clean")
SPLIT_COLUMNS = ["path", "label", "split", "group", "sha256"]


@dataclass(frozen=True)
class SplitRow:
    path: str
    label: str
    split: str
    group: str
    sha256: str


def read_groups_csv(path: str | os.PathLike) -> dict[str, str]:
    """`path,group` CSV -> {path: group}."""
    path = Path(path)
    text = read_user_text(path, "groups CSV")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise TumorlensError(f"{path}: not a readable CSV ({e})") from None
    if not rows or not {"path", "group"} <= set(rows[0]):
        raise TumorlensError(f"{path}: groups CSV needs the columns path,group")
    out: dict[str, str] = {}
    for line, r in enumerate(rows, start=2):
        if not r["group"]:
            continue
        was = out.setdefault(r["path"], r["group"])
        if was != r["group"]:
            # the last one had won silently, which can put one patient on both sides of the split (an audit)
            raise TumorlensError(f"{path}:{line}: {r['path']} is listed again with another group ({r['group']!r}, "
                                 f"earlier {was!r}); an image belongs to one group")
    return out


def choose_groups(group_of: list[str], labels: np.ndarray, frac: float, rng: np.random.Generator,
                  tol: float = 0.03, k: int = len(CLASSES), part: str = "test") -> np.ndarray:
    """Pick whole groups so that each class gets about `frac` of its images; returns a boolean mask.

    Large groups (>= 2% of the images; at most 12) are chosen first: among the subsets of them that can
    still end within `tol` of the target once small groups are added, one is drawn at random (so the
    seed matters even when a few patient folds dominate). Small groups are then visited in random
    order and added while they bring the per-class fractions closer to the target.
    """
    n = len(group_of)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of):
        members[g].append(i)
    names = sorted(members)
    counts = {g: np.bincount(labels[members[g]], minlength=k).astype(float) for g in names}
    n_c = np.bincount(labels, minlength=k).astype(float)
    present = n_c > 0
    target = frac * n_c

    def cost(c: np.ndarray) -> float:
        # squared log-ratio: leaving a class out entirely costs far more than overshooting it, so a val
        # set drawn from a few big patient folds still gets every class
        return float((np.log((c + 1) / (target + 1)) ** 2)[present].sum())

    by_size = sorted(names, key=lambda g: (-len(members[g]), g))
    large = [g for g in by_size[:12] if len(members[g]) >= 0.02 * n]
    small = [g for g in names if g not in set(large)]
    small_cap = sum((counts[g] for g in small), np.zeros(k))
    feasible, fallback = [], []
    for r in range(len(large) + 1):
        for combo in itertools.combinations(large, r):
            c = sum((counts[g] for g in combo), np.zeros(k))
            over = (c - target) / np.maximum(n_c, 1)
            under = (target - c - small_cap) / np.maximum(n_c, 1)
            ok = bool(np.all(over[present] <= tol) and np.all(under[present] <= tol))
            (feasible if ok else fallback).append((combo, c))
    if feasible:
        combo, chosen_c = feasible[int(rng.integers(len(feasible)))]
    else:  # nothing can hit the tolerance: take the subset that can come closest
        combo, chosen_c = min(fallback, key=lambda t: cost(t[1] + np.clip(target - t[1], 0, small_cap)))
        log.warning("%s part: the group sizes do not allow every class within %.0f points of its target share "
                    "(%.1f%%); the closest choice is kept (see the split table)", part, tol * 100, frac * 100)
    chosen = set(combo)
    c = chosen_c.copy()
    order = [small[i] for i in rng.permutation(len(small))]
    for g in order:
        if cost(c + counts[g]) < cost(c):
            chosen.add(g)
            c = c + counts[g]
    mask = np.zeros(n, dtype=bool)
    for g in chosen:
        mask[members[g]] = True
    return mask


def check_seed(seed: int, option: str = "seed") -> int:
    """A split seed numpy accepts (0 to 2^32 - 1), else a one-line error (numpy's is a ValueError traceback)."""
    if not 0 <= int(seed) < 2 ** 32:
        raise TumorlensError(f"--{option} must be from 0 to {2 ** 32 - 1}, got {seed}")
    return seed


def check_sizes(test_size: float, val_size: float) -> None:
    """The part sizes `make_split` takes; the CLI checks them before decoding a dataset."""
    if not 0 < test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
        raise TumorlensError(f"need 0 < test-size < 1, 0 <= val-size < 1 and test-size + val-size < 1, got "
                             f"{test_size:g} and {val_size:g}")


def make_split(paths: list[str], labels: list[str], folder_split: list[str | None], sha256: list[str],
               audit: AuditResult, strategy: str, test_size: float = 0.2, val_size: float = 0.1,
               seed: int = 0, groups: dict[str, str] | None = None) -> list[SplitRow]:
    """Assign each image to train/val/test (see the module docstring); rows sorted by path."""
    if strategy not in STRATEGIES:
        raise TumorlensError(f"unknown split strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    check_seed(seed)
    check_sizes(test_size, val_size)
    n = len(paths)
    y = np.array([CLASSES.index(l) for l in labels])
    # groups: the audit's duplicate clusters, merged with the CSV keys (transitively)
    uf = UnionFind(n)
    for members in audit.groups().values():
        for i in members[1:]:
            uf.union(members[0], i)
    csv_members: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(paths):
        if groups and p in groups:
            csv_members[groups[p]].append(i)
    for members in csv_members.values():
        for i in members[1:]:
            uf.union(members[0], i)
    root = uf.labels()
    keys_of_root: dict[int, set[str]] = defaultdict(set)
    first_of_root: dict[int, str] = {}
    for i, p in enumerate(paths):
        r = int(root[i])
        first_of_root.setdefault(r, p)
        first_of_root[r] = min(first_of_root[r], p)
        if groups and p in groups:
            keys_of_root[r].add(groups[p])
    name = {r: "+".join(sorted(keys_of_root[r])) if keys_of_root[r] else first_of_root[r] for r in first_of_root}
    group_of = [name[int(root[i])] for i in range(n)]
    merged = [ks for ks in keys_of_root.values() if len(ks) > 1]
    if merged:
        log.warning("copies link %d sets of CSV groups; they are kept together: %s", len(merged),
                    "; ".join("+".join(sorted(k)) for k in merged[:5]))

    rng = np.random.default_rng(seed)
    if strategy == "official":
        if any(s is None for s in folder_split):
            raise TumorlensError("the official strategy needs Training/ and Testing/ folders in the dataset")
        is_test = np.array([s == "test" for s in folder_split])
    elif strategy == "stratified":
        is_test = np.zeros(n, dtype=bool)
        for c in range(len(CLASSES)):
            idx = np.flatnonzero(y == c)
            k = int(round(test_size * len(idx)))
            is_test[rng.permutation(idx)[:k]] = True
    else:
        is_test = choose_groups(group_of, y, test_size, rng)
    train_side = np.flatnonzero(~is_test)
    is_val = np.zeros(n, dtype=bool)
    if val_size > 0 and len(train_side):
        # in 'stratified' the groups may straddle test and train: val only needs to avoid splitting them
        sub = choose_groups([group_of[i] for i in train_side], y[train_side], val_size / (1 - test_size),
                            rng, tol=0.05, part="val")
        is_val[train_side[sub]] = True
    rows = [SplitRow(paths[i], labels[i], "test" if is_test[i] else "val" if is_val[i] else "train",
                     group_of[i], sha256[i]) for i in range(n)]
    return sorted(rows, key=lambda r: r.path)


def split_table(rows: list[SplitRow]) -> list[dict]:
    """Per class: counts per side and the test fraction."""
    c = Counter((r.label, r.split) for r in rows)
    out = []
    for lab in CLASSES:
        tot = sum(c[(lab, s)] for s in ("train", "val", "test"))
        if tot:
            out.append({"class": lab, "train": c[(lab, "train")], "val": c[(lab, "val")],
                        "test": c[(lab, "test")], "test_fraction": round(c[(lab, "test")] / tot, 4)})
    return out


def write_split(rows: list[SplitRow], path: str | os.PathLike) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SPLIT_COLUMNS)
    for r in rows:
        w.writerow([r.path, r.label, r.split, r.group, r.sha256])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def folder_class(path: str) -> str | None:
    """The class that a dataset-relative path's class folder names, as `data.scan_dataset` reads it (the
    first folder, or the second under Training/ or Testing/); None when that folder names no class."""
    parts = path.replace("\\", "/").split("/")
    if parts and parts[0].lower() in _SPLIT_DIRS:
        parts = parts[1:]
    return canonical_class(parts[0]) if len(parts) > 1 else None


def read_split(path: str | os.PathLike) -> list[SplitRow]:
    """Read a split.csv, checking its columns and values; errors name the file and the line.

    A path listed twice is refused (evaluate would count it twice; on two sides it leaks), except a row repeated
    as is on the train side, which oversamples it (benchmarks/sequences.py --repeat). A label that contradicts
    the path's class folder is refused too: the dataset loader would label that file by its folder.
    """
    path = Path(path)
    text = read_user_text(path, "split file")
    seen: dict[str, tuple[int, SplitRow]] = {}
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or not set(SPLIT_COLUMNS[:3]) <= set(reader.fieldnames):
            raise TumorlensError(f"{path}: not a split file (needs columns {','.join(SPLIT_COLUMNS)})")
        rows = []
        for ln, r in enumerate(reader, start=2):
            if r["split"] not in ("train", "val", "test"):
                raise TumorlensError(f"{path}:{ln}: split must be train, val or test, got {r['split']!r}")
            if r["label"] not in CLASSES:
                raise TumorlensError(f"{path}:{ln}: unknown label {r['label']!r}")
            row = SplitRow(r["path"], r["label"], r["split"], r.get("group") or r["path"], r.get("sha256") or "")
            folder = folder_class(row.path)
            if folder is not None and folder != row.label:
                raise TumorlensError(f"{path}:{ln}: {row.path} is labelled {row.label} but its class folder "
                                     f"is {folder}")
            if row.path in seen:
                first_ln, first = seen[row.path]
                if not (row == first and row.split == "train"):
                    raise TumorlensError(f"{path}:{ln}: {row.path} is listed again (first on line {first_ln})")
            else:
                seen[row.path] = (ln, row)
            rows.append(row)
    except csv.Error as e:
        raise TumorlensError(f"{path}: not a readable CSV ({e})") from None
    if not rows:
        raise TumorlensError(f"{path}: split file has no rows")
    return rows
