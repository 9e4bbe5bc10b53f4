"""Duplicate and leakage audit of a class-folder dataset.

Four relations link two images, strongest first:
  exact     same file bytes (sha256);
  pixels    same preprocessed pixels (the network input quantised to 8 bits);
  near      perceptual near-copy: 256-bit dHash Hamming distance <= `max_distance`, or Pearson
            correlation >= `min_correlation` of the head-cropped network inputs at 32x32
            (re-encoded, resized, re-windowed, re-cropped copies);
  mirrored  the left-right mirror of one is a near-copy of the other.
Linked images are chained into groups (union-find). A group whose members carry two labels is a label
conflict. The Kaggle set's DUPLICATES.txt (tier D) uses dHash-256 <= 6 on fully decoded JPEGs; we decode
JPEGs at reduced scale (4x faster), which moves some copies a bit or two further apart, so our default is 8:
at 6, 1-2 of its tier-F groups straddled our clean split's test/train sides; at 7 and 8, none (3 seeds).
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import CLASSES, TumorlensError
from .data import Dataset
from .fileio import atomic_write_text

log = logging.getLogger(__name__)

KINDS = ("exact", "pixels", "near", "mirrored")
_MIN_BITS, _MAX_BITS = 24, 232  # near-flat images hash to (almost) all zeros: never match those


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def _hamming_pairs(a: np.ndarray, b: np.ndarray, max_distance: int, same: bool,
                   chunk: int = 1024) -> list[tuple[int, int]]:
    """All (i, j) with Hamming(a[i], b[j]) <= max_distance; packed 32-byte hashes; i < j when `same`."""
    A = np.unpackbits(a, axis=1).astype(np.float32)
    B = np.unpackbits(b, axis=1).astype(np.float32)
    na, nb = A.sum(1), B.sum(1)
    okb = (nb >= _MIN_BITS) & (nb <= _MAX_BITS)
    out: list[tuple[int, int]] = []
    for s in range(0, len(A), chunk):
        # Hamming = |a| + |b| - 2 a.b on 0/1 vectors: one matrix product per chunk
        d = na[s:s + chunk, None] + nb[None, :] - 2.0 * (A[s:s + chunk] @ B.T)
        hit = d <= max_distance + 0.5
        hit &= okb[None, :]
        hit &= ((na[s:s + chunk] >= _MIN_BITS) & (na[s:s + chunk] <= _MAX_BITS))[:, None]
        ii, jj = np.nonzero(hit)
        ii = ii + s
        keep = ii < jj if same else ii != jj
        out.extend(zip(ii[keep].tolist(), jj[keep].tolist()))
    return out


def _standardize(x: np.ndarray) -> np.ndarray:
    """Rows of x -> zero mean, unit norm, so a dot product is a Pearson correlation."""
    x = x - x.mean(1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)


def _thumbs(images: np.ndarray, mirror: bool) -> np.ndarray:
    """(N, S, S) network inputs -> standardised (N, 1024) 32x32 thumbnails (S a multiple of 32)."""
    n, s, _ = images.shape
    x = images[:, :, ::-1] if mirror else images
    f = s // 32
    x = x[:, :32 * f, :32 * f].reshape(n, 32, f, 32, f).mean((2, 4))  # (N, 32, 32)
    return _standardize(x.reshape(n, -1).astype(np.float32))


def _correlated_pairs(a: np.ndarray, b: np.ndarray, min_corr: float, same: bool,
                      chunk: int = 1024) -> list[tuple[int, int]]:
    """All (i, j) with corr(a[i], b[j]) >= min_corr on standardised rows; i < j when `same`."""
    out: list[tuple[int, int]] = []
    for s in range(0, len(a), chunk):
        ii, jj = np.nonzero(a[s:s + chunk] @ b.T >= min_corr)
        ii = ii + s
        keep = ii < jj if same else ii != jj
        out.extend(zip(ii[keep].tolist(), jj[keep].tolist()))
    return out


@dataclass(frozen=True)
class AuditResult:
    """Duplicate groups of a dataset: `group[i]` is image i's group id (its own index when unique)."""

    paths: list[str]
    labels: list[str]
    splits: list[str | None]
    group: np.ndarray
    kind: list[str | None]  # strongest relation that links image i to another member; None if unique

    def groups(self) -> dict[int, list[int]]:
        g: dict[int, list[int]] = defaultdict(list)
        for i, gid in enumerate(self.group.tolist()):
            g[gid].append(i)
        return {k: v for k, v in g.items() if len(v) > 1}

    def summary(self) -> dict:
        """Per class: Testing images with a copy in Training, redundant copies per split, label conflicts."""
        groups = self.groups()
        test_with_copy: Counter = Counter()
        redundant: dict[str, Counter] = {"train": Counter(), "test": Counter(), "all": Counter()}
        conflicts: Counter = Counter()
        n_conflict_groups = 0
        for members in groups.values():
            splits = {self.splits[i] for i in members}
            if "train" in splits and "test" in splits:
                for i in members:
                    if self.splits[i] == "test":
                        test_with_copy[self.labels[i]] += 1
            by_split: dict[str, list[int]] = defaultdict(list)
            for i in members:
                by_split[self.splits[i] or "all"].append(i)
            for sp, idx in by_split.items():
                # every member beyond the first of each label is redundant within its split
                per_label = Counter(self.labels[i] for i in idx)
                for lab, n in per_label.items():
                    redundant[sp][lab] += n - 1
            labs = {self.labels[i] for i in members}
            if len(labs) > 1:
                n_conflict_groups += 1
                for i in members:
                    conflicts[self.labels[i]] += 1
        n_test = Counter(l for l, s in zip(self.labels, self.splits) if s == "test")
        rows = []
        for c in CLASSES:
            if c not in set(self.labels):
                continue
            rows.append({"class": c, "test_images": n_test[c], "test_with_copy_in_train": test_with_copy[c],
                         "redundant_train": redundant["train"][c], "redundant_test": redundant["test"][c],
                         "redundant_unsplit": redundant["all"][c], "label_conflict_images": conflicts[c]})
        return {"rows": rows, "groups": len(groups), "images_in_groups": sum(len(v) for v in groups.values()),
                "label_conflict_groups": n_conflict_groups,
                "test_with_copy_in_train": sum(test_with_copy.values()), "test_images": sum(n_test.values())}

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write `group,path,split,label,kind` for every image that has a copy (atomically)."""
        path = Path(path)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["group", "path", "split", "label", "kind"])
        groups = sorted(self.groups().values(), key=lambda m: self.paths[m[0]])
        for gi, members in enumerate(groups):
            for i in sorted(members, key=lambda i: self.paths[i]):
                w.writerow([gi, self.paths[i], self.splits[i] or "", self.labels[i], self.kind[i]])
        atomic_write_text(path, buf.getvalue())
        return path


def check_thresholds(max_distance: int, min_correlation: float) -> None:
    """Refuse near-copy thresholds outside what they measure: a distance beyond the dHash's 256 bits, or a
    correlation above 1 (finds nothing) or at or below 0 (links unrelated images), instead of a silent audit."""
    if not 0 <= max_distance < 256:
        raise TumorlensError(f"--max-distance must be a number of bits from 0 to 255 (the dHash has 256), "
                             f"got {max_distance}")
    if not 0 < min_correlation <= 1:  # also false for nan
        raise TumorlensError(f"--min-correlation must be in (0, 1], got {min_correlation}")


def find_duplicates(ds: Dataset, max_distance: int = 8, min_correlation: float = 0.99,
                    mirror: bool = True) -> AuditResult:
    """Group the images of `ds` that are copies of each other (see the module docstring)."""
    check_thresholds(max_distance, min_correlation)
    n = len(ds.entries)
    uf = UnionFind(n)
    strength = [len(KINDS)] * n  # index into KINDS of the strongest link; len(KINDS) = none

    def link(i: int, j: int, k: int) -> None:
        uf.union(i, j)
        strength[i] = min(strength[i], k)
        strength[j] = min(strength[j], k)

    for k, keys in ((0, ds.sha256),
                    (1, [hashlib.md5(np.round(im * 255).astype(np.uint8).tobytes()).hexdigest()
                         for im in ds.images])):
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in first:
                link(first[key], i, k)
            else:
                first[key] = i
    # 0.99 was chosen on the Kaggle set: Testing images that DUPLICATES.txt (tier D) pairs with a Training
    # copy but whose dHash moved 7+ bits had correlations >= 0.99 in 40 of 43 cases
    thumbs = _thumbs(ds.images, mirror=False)
    pairs = _hamming_pairs(ds.dhash, ds.dhash, max_distance, same=True)
    pairs += _correlated_pairs(thumbs, thumbs, min_correlation, same=True)
    for i, j in pairs:
        link(i, j, 2)
    if mirror:
        pairs = _hamming_pairs(ds.dhash_mirror, ds.dhash, max_distance, same=False)
        pairs += _correlated_pairs(_thumbs(ds.images, mirror=True), thumbs, min_correlation, same=False)
        for i, j in pairs:
            link(i, j, 3)
    kinds = [KINDS[s] if s < len(KINDS) else None for s in strength]
    res = AuditResult([e.path for e in ds.entries], [e.label for e in ds.entries],
                      [e.split for e in ds.entries], uf.labels(), kinds)
    log.info("audit: %d duplicate groups over %d images", len(res.groups()), n)
    return res
