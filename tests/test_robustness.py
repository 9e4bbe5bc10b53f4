"""benchmarks/robustness.py on real held-out slices: flipped, turned, re-windowed, re-curved, low-resolution or
re-framed tumour slices are still found, and orientation alone does not get a real slice refused (about 25 s)."""
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
    assert len(rows) == 19 and rows["as published"][0] > 0.85
    # inverted grey levels (a crude T2 look) are a known failure, not bounded here: README, "other sequences"
    rows.pop("grey levels inverted inside the head (T2-like fluid)")
    # skull-stripped slices are a known weakness of the bundled model (trained with strip=0): 11.1% of the
    # 941 test tumours missed (benchmarks/robustness.md); bounded loosely so that a regression still shows
    assert rows.pop("skull stripped (head outline shaved by 6%)")[1] < 25.0
    curves = ("narrower window (saturate above the 80th percentile)", "histogram-equalised", "S-shaped contrast curve")
    for name, (acc, miss, refused, _) in rows.items():
        # tumour -> 'no tumour' stays rare under every change. Grey-level curves are the hardest: on these 150
        # slices the bundled model misses 8.6-12.5% of tumours under them; the model trained without curves
        # (config.contrast=0, commit 9b4dd88) missed 25.0-33.6%
        assert miss < (20.0 if name in curves else 12.0), name
    # an orientation or noise is no reason to refuse a real slice. Measured on all 1,323 test MRI slices: 2.8-2.9%
    # of sideways slices refused, 0.5% upside down, 2.7% noisy (benchmarks/robustness.md); on these 150,
    # 4.7-6.0% sideways (6.7% while the feature distance was fitted with the Kaggle CT slices in)
    for name in ("left-right flip", "upside down (vertical flip)", "turned 180 degrees", "noise (3% of the range)"):
        assert rows[name][2] < 5.0, name
    for name in ("turned 90 degrees", "turned 270 degrees"):
        assert rows[name][2] < 8.0, name
