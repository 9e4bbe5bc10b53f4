"""benchmarks/sequences.py: the hold-out split moves exactly the listed slices' groups to test, and scoring the
bundled model on the listed non-T1 tumour slices of its test side reports them by kind."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KAGGLE, load_benchmark, needs_kaggle
from tumorlens.config import TumorlensError
from tumorlens.split import read_split

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sequences.py"


def _split(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "group", "sha256"])
        w.writerows([p, "meningioma", side, group, "0" * 64] for p, side, group in rows)
    return path


def _load(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports ct_in_kaggle beside it, as when run
    return load_benchmark("sequences")


def test_hold_out_split_moves_every_group_with_a_listed_slice_to_test_and_nothing_else(tmp_path, monkeypatch):
    seq = _load(monkeypatch)
    src = _split(tmp_path / "s.csv", [("a.jpg", "train", "g1"), ("a-copy.jpg", "val", "g1"),
                                      ("b.jpg", "test", "g2"), ("c.jpg", "train", "g3"), ("d.jpg", "val", "g4")])
    listed = {"a.jpg": ("x", "T2"), "b.jpg": ("y", "FLAIR")}
    msg = seq.write_split(str(src), str(tmp_path / "out.csv"), listed)
    with open(tmp_path / "out.csv", newline="") as f:
        sides = {r["path"]: r["split"] for r in csv.DictReader(f)}
    assert sides == {"a.jpg": "test", "a-copy.jpg": "test", "b.jpg": "test", "c.jpg": "train", "d.jpg": "val"}
    assert "3 slices of 2 groups" in msg
    with pytest.raises(TumorlensError, match="1 listed slices are not in this split"):
        seq.write_split(str(src), str(tmp_path / "o2.csv"), {**listed, "zz.jpg": ("z", "T2")})


def test_a_train_half_goes_to_train_repeated_and_the_other_half_to_test(tmp_path, monkeypatch):
    seq = _load(monkeypatch)
    src = _split(tmp_path / "s.csv", [("t1.jpg", "test", "g1"), ("t2.jpg", "train", "g2"), ("f1.jpg", "val", "g3"),
                                      ("f2.jpg", "train", "g4"), ("n.jpg", "val", "g5")])
    listed = {"t1.jpg": ("", "T2"), "t2.jpg": ("", "T2"), "f1.jpg": ("", "FLAIR"), "f2.jpg": ("", "FLAIR")}
    assert seq.halves(read_split(src), listed) == (["g1", "g3"], ["g2", "g4"])  # T2 apart
    seq.write_split(str(src), str(tmp_path / "a.csv"), listed, train_half="A", repeat=3)
    with open(tmp_path / "a.csv", newline="") as f:
        got = [(r["path"], r["split"]) for r in csv.DictReader(f)]
    assert got == [("t1.jpg", "train")] * 3 + [("t2.jpg", "test")] + [("f1.jpg", "train")] * 3 + \
        [("f2.jpg", "test"), ("n.jpg", "val")]


def test_the_list_names_26_meningioma_slices_each_with_a_kind_and_a_checksum(monkeypatch):
    listed = _load(monkeypatch).read_list()
    assert len(listed) == 26 and all("/meningioma/" in p for p in listed)
    assert {k for _, k in listed.values()} == {"T2", "FLAIR", "diffusion", "unclear"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha, _ in listed.values())


@needs_kaggle()
def test_scoring_the_bundled_model_reports_its_test_side_slices_by_kind(tmp_path):
    # with --keep, the rows of models not scored now stay (a run that is gone) and a rescored model's row is replaced
    old_row = "| `runs/gone/model.safetensors` (0123456789ab) | 0.3 | 0 | 0 | 26 | **9** (35%) | T2 9/13 | 17 | ok 26 | 0.9 |"
    (tmp_path / "s.md").write_text(f"# old\n\n{old_row}\n| `bundled` (ba9876543210) | stale |\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "score", "--data", str(KAGGLE), "--out", str(tmp_path / "s.md"),
                        "--keep"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    # columns: model | contrast | sequence | t2 | strip | n | missed | by kind | right | ...
    row = re.search(r"^\| `bundled` \([0-9a-f]{12}\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| (\d+) \| \*\*(\d+)\*\* .*\| (.+?) \| "
                    r"(\d+) \|", r.stdout, re.M)
    assert row, r.stdout[-1500:]
    n, missed = int(row[1]), int(row[2])
    # the bundled model's split puts 7 of the 26 on its test side (5 of them T2); measured: 2 missed
    assert n == 7 and missed <= n and "T2 " in row[3]
    text = (tmp_path / "s.md").read_text()
    assert "Research use only" in text and "stale" not in text
    # a row written before the t2 column gets t2 0 (the setting did not exist), in its place
    upgraded = old_row.replace("| 0.3 | 0 | 0 | 26 |", "| 0.3 | 0 | 0 | 0 | 26 |")
    assert text.index(upgraded) < text.index("| `bundled` (") and "kept from this file's earlier version" in text
