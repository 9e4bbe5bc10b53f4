"""Splits: no group on both sides, per-class stratification, determinism, val from the train side."""
from __future__ import annotations

import csv
from collections import Counter, defaultdict

import numpy as np
import pytest

from tumorlens.audit import find_duplicates
from tumorlens.cli import main
from tumorlens.config import CLASSES, DISCLAIMER, TumorlensError
from tumorlens.data import load_dataset
from tumorlens.split import choose_groups, make_split, read_groups_csv, read_split, write_split
from tumorlens.synthetic import make_dataset

from conftest import KAGGLE, needs_kaggle


@pytest.fixture(scope="module")
def ds_and_audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("split") / "ds"
    make_dataset(root, n_per_class=40, size=96, seed=5, split=True, duplicates=24)
    ds = load_dataset(root, workers=1)
    return ds, find_duplicates(ds)


def _split(ds, audit, strategy, seed=0, groups=None, **kw):
    return make_split(ds.paths, [e.label for e in ds.entries], [e.split for e in ds.entries], ds.sha256,
                      audit, strategy, seed=seed, groups=groups, **kw)


def test_clean_split_keeps_every_group_on_one_side(ds_and_audit):
    ds, audit = ds_and_audit
    rows = _split(ds, audit, "clean")
    side = defaultdict(set)
    for r in rows:
        side[r.group].add("test" if r.split == "test" else "trainval")
    assert all(len(s) == 1 for s in side.values())
    for members in audit.groups().values():  # every audited copy family on one side
        assert len({rows[i].split == "test" for i in members}) == 1


def test_clean_split_is_stratified_within_three_points(ds_and_audit):
    ds, audit = ds_and_audit
    rows = _split(ds, audit, "clean", test_size=0.2)
    c = Counter((r.label, r.split) for r in rows)
    for lab in CLASSES:
        tot = sum(c[(lab, s)] for s in ("train", "val", "test"))
        assert abs(c[(lab, "test")] / tot - 0.2) <= 0.03, lab


def test_groups_csv_keys_stay_together(ds_and_audit):
    ds, audit = ds_and_audit
    # pretend every 10th image of each class belongs to one "patient"
    groups = {p: f"patient-{i % 7}" for i, p in enumerate(ds.paths)}
    rows = _split(ds, audit, "clean", groups=groups)
    by_patient = defaultdict(set)
    for r in rows:
        by_patient[groups[r.path]].add(r.split == "test")
    assert all(len(s) == 1 for s in by_patient.values())


def test_same_inputs_and_seed_give_byte_identical_file(ds_and_audit, tmp_path):
    ds, audit = ds_and_audit
    write_split(_split(ds, audit, "clean", seed=3), tmp_path / "a.csv")
    write_split(_split(ds, audit, "clean", seed=3), tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    write_split(_split(ds, audit, "clean", seed=4), tmp_path / "c.csv")
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_official_split_follows_folders_and_val_comes_from_training(ds_and_audit):
    ds, audit = ds_and_audit
    rows = _split(ds, audit, "official")
    for r in rows:
        assert (r.split == "test") == r.path.startswith("Testing/")
    assert any(r.split == "val" for r in rows)


def test_stratified_split_hits_the_fraction_per_class(ds_and_audit):
    ds, audit = ds_and_audit
    rows = _split(ds, audit, "stratified", test_size=0.25)
    c = Counter((r.label, r.split) for r in rows)
    for lab in CLASSES:
        tot = sum(c[(lab, s)] for s in ("train", "val", "test"))
        assert abs(c[(lab, "test")] / tot - 0.25) <= 0.03


def test_val_never_shares_a_group_with_train(ds_and_audit):
    ds, audit = ds_and_audit
    rows = _split(ds, audit, "clean")
    side = defaultdict(set)
    for r in rows:
        side[r.group].add(r.split)
    assert all(len(s) == 1 for s in side.values())


def test_choose_groups_draws_whole_large_groups_and_varies_with_seed():
    labels = np.repeat(np.arange(3), 100)
    # five big "folds" of 20 per class, as patient folds are
    group_of = [f"fold-{(i % 100) // 20}" for i in range(300)]
    picks = {tuple(np.flatnonzero(choose_groups(group_of, labels, 0.2, np.random.default_rng(s), k=3))[:1])
             for s in range(10)}
    assert len(picks) > 1
    m = choose_groups(group_of, labels, 0.2, np.random.default_rng(0), k=3)
    assert m.sum() == 60


@pytest.mark.parametrize("bad", [dict(test_size=0), dict(test_size=0.7, val_size=0.4)])
def test_bad_fractions_are_rejected(ds_and_audit, bad):
    ds, audit = ds_and_audit
    with pytest.raises(TumorlensError):
        _split(ds, audit, "clean", **bad)


def test_read_split_rejects_a_bad_file_naming_the_line(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("path,label,split,group,sha256\na.png,glioma,train,g,x\nb.png,glioma,holdout,g,y\n")
    with pytest.raises(TumorlensError, match=r"s.csv:3"):
        read_split(p)
    p.write_text("hello\n")
    with pytest.raises(TumorlensError, match="not a split file"):
        read_split(p)


def test_split_cli_writes_the_columns_and_says_research_use_only(ds_and_audit, tmp_path, capsys):
    ds, _ = ds_and_audit
    assert main(["split", str(ds.root), "--strategy", "clean", "--out", str(tmp_path / "s.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(rows[0]) == ["path", "label", "split", "group", "sha256"]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert capsys.readouterr().out.splitlines()[0] == DISCLAIMER


HEADER = "path,label,split,group,sha256\n"


def test_a_split_or_groups_file_not_in_utf8_is_a_one_line_error_naming_it(ds_and_audit, tmp_path, capsys):
    text = HEADER + "glioma/a.png,glioma,train,g,x\nglioma/b.png,glioma,test,h,y\n"
    for name, data in (("u16.csv", text.encode("utf-16")), ("junk.csv", bytes(range(256)) * 4)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TumorlensError) as e:
            read_split(tmp_path / name)
        assert str(e.value) == f"{tmp_path / name}: not a UTF-8 text file"
    groups = tmp_path / "g.csv"
    groups.write_bytes("path,group\nglioma/a.png,p1\n".encode("utf-16"))
    ds, _ = ds_and_audit
    assert main(["split", str(ds.root), "--strategy", "clean", "--groups", str(groups),
                 "--out", str(tmp_path / "s.csv")]) == 2
    assert capsys.readouterr().err == f"error: {groups}: not a UTF-8 text file\n"


def test_a_split_saved_as_excel_csv_utf8_with_a_byte_order_mark_reads_like_plain_utf8(tmp_path):
    text = HEADER + "glioma/a.png,glioma,train,g,x\nglioma/b.png,glioma,test,h,y\n"
    (tmp_path / "plain.csv").write_text(text, encoding="utf-8")
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    assert read_split(tmp_path / "bom.csv") == read_split(tmp_path / "plain.csv")
    (tmp_path / "g.csv").write_text("path,group\nglioma/a.png,p1\n", encoding="utf-8-sig")
    assert read_groups_csv(tmp_path / "g.csv") == {"glioma/a.png": "p1"}


def test_a_groups_csv_giving_one_image_two_groups_is_refused_naming_the_line(tmp_path):
    """The last group won silently, which can put one patient on both sides (an audit); the same group twice is
    harmless."""
    (tmp_path / "g.csv").write_text("path,group\nglioma/a.png,p1\nglioma/b.png,p2\nglioma/a.png,p1\n")
    assert read_groups_csv(tmp_path / "g.csv") == {"glioma/a.png": "p1", "glioma/b.png": "p2"}
    (tmp_path / "g.csv").write_text("path,group\nglioma/a.png,p1\nglioma/b.png,p2\nglioma/a.png,p3\n")
    with pytest.raises(TumorlensError, match=r"g.csv:4: glioma/a.png is listed again with another group \('p3', "
                                             r"earlier 'p1'\)"):
        read_groups_csv(tmp_path / "g.csv")


@pytest.mark.parametrize("second, first_side", [("test", "test"), ("test", "train"), ("val", "train")])
def test_a_path_listed_twice_is_refused_naming_both_lines(tmp_path, second, first_side):
    p = tmp_path / "s.csv"
    p.write_text(HEADER + f"glioma/a.png,glioma,{first_side},g,x\nglioma/b.png,glioma,val,h,y\n"
                 f"glioma/a.png,glioma,{second},g,x\n")
    with pytest.raises(TumorlensError) as e:
        read_split(p)
    assert str(e.value) == f"{p}:4: glioma/a.png is listed again (first on line 2)"


def test_a_row_repeated_as_is_on_the_train_side_is_kept_as_oversampling(tmp_path):
    # benchmarks/sequences.py --repeat writes such files on purpose
    p = tmp_path / "s.csv"
    p.write_text(HEADER + "glioma/a.png,glioma,train,g,x\n" * 3 + "glioma/b.png,glioma,test,h,y\n")
    assert [r.path for r in read_split(p)] == ["glioma/a.png"] * 3 + ["glioma/b.png"]
    p.write_text(HEADER + "glioma/a.png,glioma,train,g,x\nglioma/a.png,glioma,train,g2,x\n")  # not as is
    with pytest.raises(TumorlensError, match=":3: glioma/a.png is listed again"):
        read_split(p)


@pytest.mark.parametrize("path", ["glioma/a.png", "Training/glioma/a.png", "testing/Glioma/sub/a.png"])
def test_a_label_that_contradicts_its_class_folder_is_refused(tmp_path, path):
    p = tmp_path / "s.csv"
    p.write_text(HEADER + "pituitary/b.png,pituitary,train,g,x\n" + f"{path},pituitary,test,h,y\n")
    with pytest.raises(TumorlensError) as e:
        read_split(p)
    assert str(e.value) == f"{p}:3: {path} is labelled pituitary but its class folder is glioma"
    p.write_text(HEADER + "scans/a.png,pituitary,test,h,y\na.png,glioma,train,g,x\n")  # no class folder: trusted
    assert [r.label for r in read_split(p)] == ["pituitary", "glioma"]


@needs_kaggle()
def test_kaggle_clean_split_has_no_tier_f_group_straddling(tmp_path):
    """The acceptance check of the split issue, on the real data (about 15 s with a warm cache)."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "clean.csv"
    assert main(["split", str(KAGGLE), "--strategy", "clean", "--groups",
                 str(KAGGLE / "groups-figshare-fold.csv"), "--out", str(out)]) == 0
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "check_split_leakage.py"
    r = subprocess.run([sys.executable, str(script), str(out), "--dataset", str(KAGGLE)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
