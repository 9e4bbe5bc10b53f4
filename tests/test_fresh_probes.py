"""benchmarks/fresh_probes.py: a group of probes comes out the same twice, the report counts fake records into
the expected tables (no model needed); the command line is tested in test_probe_sets.py (about 5 s)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_benchmark



def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_probe_group_is_generated_the_same_twice(tmp_path):
    mod = load_benchmark("fresh_probes")
    counts, notes = mod.generate(tmp_path / "a", ("document",))
    again, _ = mod.generate(tmp_path / "b", ("document",))
    assert counts == again == {"document": 41} and notes == []
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 41 and a.keys() == b.keys()
    # the lossless files, bit for bit (JPEG bytes follow the installed libjpeg, but are the same within one)
    assert all(a[k] == b[k] for k in a)
    assert {"document/plot_line.png", "document/qr2.bmp", "document/textpage1.jpg"} <= a.keys()
    with pytest.raises(ValueError, match="unknown probe groups"):
        mod.generate(tmp_path / "c", ("mri",))


def test_the_report_counts_categories_and_refusal_layers_and_lists_what_was_not_refused():
    mod = load_benchmark("fresh_probes")
    from tumorlens.predict import DISTANCE_REASON

    def rec(path, status, label=None, conf=None, reason=None):
        return {"path": path, "category": path.split("/")[0], "status": status, "label": label,
                "confidence": conf, "reason": reason}

    rows = [rec("decoy/a.png", "rejected", reason=f"{DISTANCE_REASON}: closer to photographs and textures "
                                                  "[look-alike score 0.93 > 0.5]"),
            rec("decoy/b.png", "rejected", reason=f"{DISTANCE_REASON} [distance 12.0 > 9.1]"),
            rec("decoy/c.png", "ok", "glioma", 0.91234),
            rec("texture/d.png", "rejected", reason="colour image: a photograph, not an MRI slice"),
            rec("texture/e.jpg", "uncertain", "meningioma", 0.4),
            rec("texture/f.tif", "error", reason="cannot read")]
    text = mod.report(rows, "python benchmarks/fresh_probes.py --threads 2", "m.safetensors", "0123456789abcdef",
                      2, 12.3, ["scikit-learn is not installed: its sample photographs (china, flower) were skipped."])
    lines = text.splitlines()
    assert lines[0].startswith("# ") and lines[2] == ("Research use only - not a medical device. Not for diagnosis or "
                                                      "treatment decisions.")
    assert "`python benchmarks/fresh_probes.py --threads 2`" in text and "`m.safetensors` (sha256 0123456789ab)" in text
    assert "torch threads 2; 6 probes; 12 s" in text and "not a blind test" in text
    assert "scikit-learn is not installed" in text
    assert "| decoy | 3 | 2 | 1 | 0 | 0 |" in lines and "| texture | 3 | 1 | 0 | 1 | 1 |" in lines
    assert "| **total** | **6** | **3** | **1** | **1** | **1** |" in lines
    assert {"| look-alike detector | 1 |", "| feature distance | 1 |", "| image checks or headers | 1 |"} <= set(lines)
    listed = [x for x in lines if x.startswith(("| decoy/", "| texture/"))]
    assert listed == ["| decoy/c.png | ok | glioma | 0.912 |", "| texture/e.jpg | uncertain | meningioma | 0.400 |",
                      "| texture/f.tif | error | - | - |"]
