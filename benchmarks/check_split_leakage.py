"""Independent leakage check of a split.csv against the Kaggle set's DUPLICATES.txt.

Reads the duplicate groups of one tier (default F: near/mirrored copies united with same-figshare-slice
groups) straight from DUPLICATES.txt, not through tumorlens, and counts groups with members both in
test and in train/val. Usage:
    python benchmarks/check_split_leakage.py SPLIT_CSV [--dataset ../shared/data/brain-tumor-mri-dataset]
"""
import argparse
import csv
import sys
from collections import Counter

ap = argparse.ArgumentParser()
ap.add_argument("split_csv")
ap.add_argument("--dataset", default="../shared/data/brain-tumor-mri-dataset")
ap.add_argument("--tier", default="F_union_D_and_E")
a = ap.parse_args()

side = {r["path"]: ("test" if r["split"] == "test" else "trainval") for r in csv.DictReader(open(a.split_csv))}
groups, cur = [], None
for line in open(f"{a.dataset}/DUPLICATES.txt"):
    if line.startswith("## "):
        cur = line.split()[1]
        continue
    if cur == a.tier and line.strip() and not line.startswith("#"):
        groups.append(line.rstrip("\n").split("\t")[1:])
straddle = [g for g in groups if len({side.get(p) for p in g} - {None}) > 1]
counts = Counter((r["label"], r["split"]) for r in csv.DictReader(open(a.split_csv)))
print(f"tier {a.tier}: {len(groups)} groups, {len(straddle)} straddle test and train/val")
for g in straddle[:10]:
    print("  ", " | ".join(f"{p} ({side.get(p)})" for p in g))
for lab in sorted({l for l, _ in counts}):
    print(f"  {lab:<11} train {counts[(lab, 'train')]:5d}  val {counts[(lab, 'val')]:4d}  test {counts[(lab, 'test')]:4d}")
sys.exit(1 if straddle else 0)
