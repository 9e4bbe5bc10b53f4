"""Duplicate audit: planted copies of every kind are found, unrelated images are never paired."""
from __future__ import annotations

import csv
from collections import defaultdict

import pytest

from tumorlens.audit import find_duplicates
from tumorlens.cli import main
from tumorlens.config import DISCLAIMER
from tumorlens.data import load_dataset
from tumorlens.synthetic import make_dataset, manifest_path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit") / "ds"
    make_dataset(root, n_per_class=12, size=256, seed=3, split=True, duplicates=16)
    with open(manifest_path(root), newline="") as f:
        manifest = list(csv.DictReader(f))
    return root, manifest


def test_every_planted_copy_is_grouped_with_its_source(planted, monkeypatch, tmp_path):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "c"))
    root, manifest = planted
    res = find_duplicates(load_dataset(root, workers=1))
    idx = {p: i for i, p in enumerate(res.paths)}
    dups = [r for r in manifest if r["duplicate_of"]]
    assert {r["kind"] for r in dups} == {"reencoded", "resized", "mirrored", "brightness"}
    for r in dups:
        assert res.group[idx[r["path"]]] == res.group[idx[r["duplicate_of"]]], r


def test_unrelated_images_are_never_paired(planted, monkeypatch, tmp_path):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "c"))
    root, manifest = planted
    res = find_duplicates(load_dataset(root, workers=1))
    family = {r["path"]: r["duplicate_of"] or r["path"] for r in manifest}
    for members in res.groups().values():
        assert len({family[res.paths[i]] for i in members}) == 1, [res.paths[i] for i in members]


def test_mirrored_copy_is_labelled_mirrored(planted, monkeypatch, tmp_path):
    monkeypatch.setenv("TUMORLENS_CACHE_DIR", str(tmp_path / "c"))
    root, manifest = planted
    res = find_duplicates(load_dataset(root, workers=1))
    idx = {p: i for i, p in enumerate(res.paths)}
    mirrored = [r["path"] for r in manifest if r["kind"] == "mirrored"]
    assert mirrored and all(res.kind[idx[p]] == "mirrored" for p in mirrored)


def test_exact_copy_and_label_conflict_are_reported(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_per_class=6, size=96, seed=1)
    src = sorted((root / "glioma").iterdir())[0]
    (root / "glioma" / "copy.png").write_bytes(src.read_bytes())
    (root / "meningioma" / "conflict.png").write_bytes(src.read_bytes())
    res = find_duplicates(load_dataset(root, workers=1))
    s = res.summary()
    assert s["label_conflict_groups"] == 1
    idx = {p: i for i, p in enumerate(res.paths)}
    assert res.kind[idx["glioma/copy.png"]] == "exact"


def test_audit_cli_writes_csv_and_summary_and_says_research_use_only(planted, tmp_path, capsys):
    root, manifest = planted
    assert main(["audit", str(root), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "Testing images with a copy in Training" in out and "label-conflict groups" in out
    assert out.splitlines()[0] == DISCLAIMER
    rows = list(csv.DictReader(open(tmp_path / "a" / "duplicates.csv")))
    assert rows and set(rows[0]) == {"group", "path", "split", "label", "kind"}
    groups = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)
    assert all(len(g) >= 2 for g in groups.values())  # only images that have a copy are listed
    assert all(not r["path"].startswith("/") for r in rows)  # relative to DATA_DIR


def test_audit_cli_bad_folder_is_one_line_error(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "not found" in err[0]


@pytest.mark.parametrize("option, value, message", [
    ("--max-distance", "9999", "--max-distance must be a number of bits from 0 to 255 (the dHash has 256), got 9999"),
    ("--max-distance", "-1", "--max-distance must be a number of bits from 0 to 255 (the dHash has 256), got -1"),
    ("--min-correlation", "5", "--min-correlation must be in (0, 1], got 5.0"),
    ("--min-correlation", "0", "--min-correlation must be in (0, 1], got 0.0"),
])
def test_near_copy_thresholds_outside_their_range_are_one_line_errors(planted, tmp_path, capsys, option, value,
                                                                      message):
    root, _ = planted
    assert main(["audit", str(root), "--out", str(tmp_path / "a"), option, value]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "a").exists()
