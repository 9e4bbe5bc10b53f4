"""benchmarks/blind_probes.py: a group of probes comes out the same twice, a missing pydicom skips the DICOM
probes with a note, the report counts fake records into the expected tables (no model needed), and an unknown group is refused
(about 5 s); the shared command line is tested in test_probe_sets.py."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import load_benchmark

torch.set_num_threads(1)



def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_probe_group_is_generated_the_same_twice(tmp_path):
    mod = load_benchmark("blind_probes")
    counts, notes = mod.generate(tmp_path / "a", ("drawing", "format"))
    again, _ = mod.generate(tmp_path / "b", ("drawing", "format"))
    assert counts == again == {"synth_drawing": 25, "misc_format": 12}
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 25 + 12 + 1 and a.keys() == b.keys()
    # every file bit for bit, the manifest too (JPEG bytes follow the installed libjpeg, the same within one)
    assert all(a[k] == b[k] for k in a)
    assert {"synth_drawing/lines0.png", "synth_drawing/cartoonface0.jpg", "misc_format/camera_bmp.bmp",
            "misc_format/chelsea_tiff.tif", "manifest.csv"} <= a.keys()
    with open(tmp_path / "a" / "manifest.csv", newline="") as f:
        manifest = list(csv.reader(f))
    assert manifest[0] == ["file", "description"] and len(manifest) == 1 + 37
    assert ["misc_format/camera_bmp.bmp", "cameraman photo as BMP"] in manifest
    assert mod.read_manifest(tmp_path / "a")["synth_drawing/smiley.png"] == "grey smiley disc on black"
    with pytest.raises(ValueError, match="unknown probe groups"):
        mod.generate(tmp_path / "c", ("mri",))


def test_without_pydicom_the_dicom_probes_are_skipped_with_one_note(tmp_path, monkeypatch):
    mod = load_benchmark("blind_probes")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pydicom" else real(name, *a))
    counts, notes = mod.generate(tmp_path / "d", ("dicom",))
    assert counts == {} and notes == ["pydicom is not installed: the DICOM probes were skipped."]
    assert not (tmp_path / "d" / "dicom").exists()


def test_the_report_counts_categories_and_refusal_layers_and_lists_what_was_not_refused():
    mod = load_benchmark("blind_probes")
    from tumorlens.predict import DISTANCE_REASON

    def rec(path, status, label=None, conf=None, reason=None, desc="a probe"):
        return {"path": path, "category": path.split("/")[0], "status": status, "label": label,
                "confidence": conf, "reason": reason, "description": desc}

    rows = [rec("brain_decoy/a.png", "rejected", reason=f"{DISTANCE_REASON}: closer to photographs and textures "
                                                        "[look-alike score 0.93 > 0.5]"),
            rec("brain_decoy/b.png", "rejected", reason=f"{DISTANCE_REASON} [distance 12.0 > 9.1]"),
            rec("brain_decoy/c.png", "ok", "glioma", 0.91234, desc="grey ellipse on black with gyri-like curves"),
            rec("canvas_grid/d_A.jpg", "rejected", reason="a colour image (brain MRI slices are grayscale)"),
            rec("canvas_grid/e_B.png", "uncertain", "meningioma", 0.4, desc="grey 'moon' soft | rim"),
            rec("dicom/f.dcm", "error", reason="cannot read", desc="DICOM CT")]
    text = mod.report(rows, "python benchmarks/blind_probes.py --threads 2", "m.safetensors", "0123456789abcdef",
                      2, 12.3, ["scikit-learn is not installed: its sample photographs (china, flower) were skipped."])
    lines = text.splitlines()
    assert lines[0].startswith("# ") and lines[2] == ("Research use only - not a medical device. Not for diagnosis or "
                                                      "treatment decisions.")
    assert "`python benchmarks/blind_probes.py --threads 2`" in text and "`m.safetensors` (sha256 0123456789ab)" in text
    assert "torch threads 2; 6 probes; 12 s" in text and "6 images that are not 2-D brain MRI slices, in 3 " in text
    assert "built on 2026-11-28 by a helper as a blind probe set" in text
    assert "`tumorlens/lookalike.py` had been fitted" in text and "nothing in the refusal was tuned on it" in text
    assert "scikit-learn is not installed" in text
    assert "| brain_decoy | 3 | 2 | 1 | 0 | 0 |" in lines and "| canvas_grid | 2 | 1 | 0 | 1 | 0 |" in lines
    assert "| dicom | 1 | 0 | 0 | 0 | 1 |" in lines
    assert "| **total** | **6** | **3** | **1** | **1** | **1** |" in lines
    assert "| **total without canvas_grid** | **4** | **2** | **1** | **0** | **1** |" in lines
    assert "| layer | probes | without canvas_grid |" in lines
    assert {"| look-alike detector | 1 | 1 |", "| feature distance | 1 | 1 |",
            "| image checks or headers | 1 | 0 |"} <= set(lines)
    listed = [x for x in lines if x.startswith(("| brain_decoy/", "| canvas_grid/", "| dicom/"))]
    assert listed == ["| brain_decoy/c.png | ok | glioma | 0.912 | grey ellipse on black with gyri-like curves |",
                      "| canvas_grid/e_B.png | uncertain | meningioma | 0.400 | grey 'moon' soft \\| rim |",
                      "| dicom/f.dcm | error | - | - | DICOM CT |"]
    none = mod.report(rows[:2], "c", "m", "0" * 64, 1, 1.0)
    assert "None: every probe was refused." in none and "| **total without canvas_grid** | **2** | **2** |" in none


def test_an_unknown_probe_group_is_refused_before_anything_is_written(tmp_path):
    mod = load_benchmark("blind_probes")
    out = tmp_path / "r.md"
    with pytest.raises(SystemExit, match="choose among"):
        mod.main(["--only", "photo,mri", "--out", str(out)])
    assert not out.exists()
