"""benchmarks/probe_sets.py, the command line the probe-set benchmarks share: where probes may go, the layer a
refusal names, and a run that writes its report atomically and removes its temporary probes (no model needed)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_a_probe_folder_inside_the_repository_or_shared_or_holding_files_is_refused(tmp_path):
    mod = load_benchmark("probe_sets")
    for d in (ROOT / "probes-here", ROOT.parent / "shared" / "probes"):
        with pytest.raises(SystemExit, match="inside"):
            mod.check_probes_dir(str(d))
        assert not d.exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    with pytest.raises(SystemExit, match="not an empty folder"):
        mod.check_probes_dir(str(tmp_path / "full"))
    assert mod.check_probes_dir(str(tmp_path / "new")) == (tmp_path / "new").resolve()


def test_the_refusing_layer_is_read_from_the_reason():
    mod = load_benchmark("probe_sets")
    from tumorlens.predict import DISTANCE_REASON

    assert mod.layer(f"{DISTANCE_REASON}: closer to photographs [look-alike score 2 > 1]") == "look-alike detector"
    assert mod.layer(f"{DISTANCE_REASON} [feature distance 2 > 1]") == "feature distance"
    assert mod.layer("blank or constant image") == mod.layer(None) == "image checks or headers"


def _run(mod, argv, seen):
    def generate(folder, groups):
        seen["folder"], seen["groups"] = folder, groups
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "a.png").write_bytes(b"x")
        return {"a": 1}, []

    def score(folder, model):
        seen["files"] = sorted(p.name for p in folder.iterdir())
        return [{"status": "rejected"}], SimpleNamespace(path=ROOT / "m.safetensors", sha256="0" * 64)

    def report(rows, command, model, sha256, threads, seconds, notes):
        return f"{command} | {model} | {len(rows)}\n"

    mod.run(argv, "x_probes.py", "doc", ("a", "b"), seen["out"], generate, score, report)


def test_a_run_reports_atomically_and_removes_its_temporary_probes(tmp_path):
    mod = load_benchmark("probe_sets")
    seen = {"out": tmp_path / "r.md"}
    _run(mod, ["--only", "b", "--threads", "1"], seen)
    assert seen["groups"] == ("b",) and seen["files"] == ["a.png"] and not seen["folder"].exists()
    assert (tmp_path / "r.md").read_text() == "python benchmarks/x_probes.py --only b | m.safetensors | 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left beside it
    kept = tmp_path / "kept"
    _run(mod, ["--probes", str(kept), "--out", str(tmp_path / "r2.md")], dict(seen, out=None))
    assert (kept / "a.png").exists()  # a folder asked for is kept


@pytest.mark.parametrize("argv, says", [(["--only", "c"], "choose among"), (["--threads", "0"], "at least 1"),
                                        (["--out", "/nonexistent/dir/r.md"], "does not exist")])
def test_bad_options_are_one_line_errors(tmp_path, argv, says):
    mod = load_benchmark("probe_sets")
    with pytest.raises(SystemExit, match=says):
        _run(mod, argv, {"out": tmp_path / "r.md"})
    assert not (tmp_path / "r.md").exists()
