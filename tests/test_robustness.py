"""benchmarks/robustness.py on real held-out slices: flipped, turned, re-windowed, low-resolution or re-framed
tumour slices are still found, and orientation alone does not get a real slice refused (about 20 s)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import KAGGLE, needs_kaggle


@needs_kaggle()
def test_changed_test_slices_keep_their_tumours_and_are_not_refused_for_orientation(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py"
    r = subprocess.run([sys.executable, str(script), "--data", str(KAGGLE), "--limit", "150",
                        "--out", str(tmp_path / "r.md")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {m[0]: [float(v) for v in m[1:]] for m in re.findall(
        r"^\| ([^|]+?) \| ([\d.]+) \([^)]*\) \| ([\d.]+)% \([^)]*\) \| ([\d.]+)% \| ([\d.]+)% \|$", r.stdout, re.M)}
    assert len(rows) == 14 and rows["as published"][0] > 0.85
    for name, (acc, miss, refused, _) in rows.items():
        assert miss < 12.0, name  # tumour -> 'no tumour' stays rare under every change
    # an orientation or noise is no reason to refuse a real slice. Sideways slices were bounded at 10% while the
    # feature distance was fitted with the Kaggle CT slices in (3.8-3.9% of all test slices refused, 6.7% of
    # these 150); fitted without them, 2.2-2.7% and 2.7-3.3% (benchmarks/robustness.md)
    for name in ("left-right flip", "upside down (vertical flip)", "turned 90 degrees", "turned 180 degrees",
                 "turned 270 degrees", "noise (3% of the range)"):
        assert rows[name][2] < 5.0, name
