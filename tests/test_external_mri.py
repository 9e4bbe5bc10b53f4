"""benchmarks/external_mri.py: slices cut from a RAS volume are shown as the product's NIfTI reader shows them,
the head's extent is found, and a run on nibabel's bundled fMRI volume writes a record whose counts add up."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_benchmark


def test_slices_are_cut_in_display_orientation_and_the_head_range_skips_empty_ends():
    mod = load_benchmark("external_mri")
    vol = np.zeros((10, 12, 14), np.float32)  # RAS+ axes, as nibabel.as_closest_canonical returns them
    vol[2:8, 3:9, 4:11] = 1.0
    vol[7, 8, 10] = 5.0  # towards +x (the patient's right), +y (anterior), +z (superior)
    ax, cm, rm = mod.cut(vol, [1.0, 2.0, 3.0], "axial", 10)
    assert ax.shape == (12, 10) and (cm, rm) == (1.0, 2.0)
    assert np.unravel_index(ax.argmax(), ax.shape) == (12 - 1 - 8, 10 - 1 - 7)  # anterior at the top, right on the left
    sag, _, _ = mod.cut(vol, [1.0, 2.0, 3.0], "sagittal", 7)
    assert sag.shape == (14, 12) and np.unravel_index(sag.argmax(), sag.shape) == (14 - 1 - 10, 12 - 1 - 8)
    assert mod.head_range(vol, 2) == (4, 10) and mod.head_range(vol, 0) == (2, 7)


def test_a_run_on_nibabels_fmri_volume_writes_a_record_that_adds_up(tmp_path, monkeypatch):
    mod = load_benchmark("external_mri")
    src = [s for s in mod.SOURCES if s[1] == "nibabel"]
    if mod.package_file(src[0][1], src[0][2]) is None:
        pytest.skip("nibabel's bundled example4d.nii.gz is not installed")
    monkeypatch.setattr(mod, "SOURCES", src + [("absent", "no_such_package_xyz", "a.nii", "nothing", ("axial",))])
    out = tmp_path / "external.md"
    monkeypatch.setattr("sys.argv", ["external_mri.py", "--out", str(out), "--work", str(tmp_path / "w")])
    mod.main()
    text = out.read_text()
    assert "Research use only" in text and "skipped: absent" in text
    line = next(x for x in text.splitlines() if x.startswith("Every record:"))
    n, *parts = [int(w.rstrip(".,")) for w in line.split() if w.rstrip(".,").isdigit()]
    assert n == sum(parts) and n > 0
    assert len(list((tmp_path / "w" / "example4d_epi" / "axial").glob("*.png"))) >= 5
