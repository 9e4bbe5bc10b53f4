"""How much of the Kaggle set's own duplicate list (DUPLICATES.txt) does `tumorlens audit` find?

For tiers D (near + mirrored copies) and F (D plus same-figshare-slice copies), counts the Testing images
that the reference pairs with a Training copy and that our audit also gives a Training copy.

    python benchmarks/audit_vs_reference.py [--dataset ../shared/data/brain-tumor-mri-dataset]
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from tumorlens.audit import find_duplicates
from tumorlens.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def reference_tiers(path: Path) -> dict[str, list[list[str]]]:
    tiers: dict[str, list[list[str]]] = {}
    cur = None
    for line in open(path):
        if line.startswith("## "):
            cur = line.split()[1]
            tiers[cur] = []
        elif cur and line.strip() and not line.startswith("#"):
            tiers[cur].append(line.rstrip("\n").split("\t")[1:])
    return tiers


def test_with_copy(groups: list[list[str]]) -> set[str]:
    out: set[str] = set()
    for g in groups:
        if any(p.startswith("Training") for p in g) and any(p.startswith("Testing") for p in g):
            out |= {p for p in g if p.startswith("Testing")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(ROOT.parent / "shared/data/brain-tumor-mri-dataset"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = find_duplicates(load_dataset(a.dataset))
    ours: set[str] = set()
    for members in res.groups().values():
        sides = {res.splits[i] for i in members}
        if {"train", "test"} <= sides:
            ours |= {res.paths[i] for i in members if res.splits[i] == "test"}
    tiers = reference_tiers(Path(a.dataset) / "DUPLICATES.txt")
    print(f"audit: {len(ours)} Testing images with a copy in Training ({time.perf_counter() - t0:.1f} s)")
    for tier in ("D_dhash256_le6_incl_mirror", "F_union_D_and_E"):
        ref = test_with_copy(tiers[tier])
        hit = ref & ours
        missed = Counter(p.split("/")[1] for p in ref - ours)
        print(f"tier {tier}: reference {len(ref)}, found {len(hit)} ({100 * len(hit) / len(ref):.1f}%), "
              f"missed by class {dict(missed)}; ours beyond this tier: {len(ours - ref)}")
    return 0


if __name__ == "__main__":
    from tumorlens.cli import guarded

    raise SystemExit(guarded(main))
