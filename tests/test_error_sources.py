"""benchmarks/error_sources.py: test images sorted by source (figshare copy, other tumour, no tumour, listed CT)
and scored per source and class, on a hand-made predictions file and mapping."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_a_listed_ct_slice_and_the_figshare_correlation_threshold_decide_the_source():
    mod = load_benchmark("error_sources")
    fig = {"a.jpg": 0.999, "b.jpg": 0.95}
    assert mod.source_of("a.jpg", "glioma", fig, set()) == "figshare copy"
    assert mod.source_of("b.jpg", "glioma", fig, set()) == "other tumour"  # below 0.97: not a figshare copy
    assert mod.source_of("c.jpg", "notumor", fig, set()) == "no tumour"
    assert mod.source_of("a.jpg", "glioma", fig, {"a.jpg"}) == "CT (listed)"


def _run(tmp_path: Path, preds: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "KAGGLE_TO_FIGSHARE.csv").write_text(
        "kaggle_path,kaggle_class,figshare_index,orientation_vs_figshare_jpg,correlation,figshare_class,"
        "figshare_cv_fold,label_agrees\n"
        "T/glioma/g1.jpg,glioma,1,same,1.0,glioma,1,1\nT/glioma/g2.jpg,glioma,2,same,0.999,glioma,1,1\n"
        "T/meningioma/m1.jpg,meningioma,3,same,0.5,meningioma,2,1\n")
    p = tmp_path / "predictions.csv"
    p.write_text(preds)
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "error_sources.py"), str(p), "--data", str(data),
                           "--out", str(tmp_path / "out.md")], capture_output=True, text=True)


def test_accuracy_per_source_and_class_counts_each_image_once(tmp_path):
    r = _run(tmp_path, "path,true,pred,p_glioma,p_meningioma,p_notumor,p_pituitary\n"
                       "T/glioma/g1.jpg,glioma,glioma,1,0,0,0\nT/glioma/g2.jpg,glioma,meningioma,0,1,0,0\n"
                       "T/meningioma/m1.jpg,meningioma,meningioma,0,1,0,0\nT/notumor/n1.jpg,notumor,glioma,1,0,0,0\n")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out.md").read_text()
    assert "Research use only" in text
    # figshare: 1 of 2 gliomas right (one class only: a single row), the rest one image each
    assert "| figshare copy | glioma | 2 | 0.500 " in text and "glioma -> meningioma (1)" in text
    assert "| other tumour | meningioma | 1 | 1.000 " in text
    assert "| no tumour | notumor | 1 | 0.000 " in text and "notumor -> glioma (1)" in text
    assert "accuracy 0.5000 (2 of 4)" in text


def test_a_file_that_is_not_a_predictions_csv_is_a_one_line_error(tmp_path):
    r = _run(tmp_path, "a,b\n1,2\n")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "not a predictions.csv" in r.stderr and len(r.stderr.strip().splitlines()) == 1
