"""benchmarks/robustness.py on real held-out slices: flipped, turned, re-windowed, re-curved, low-resolution,
re-framed, skull-stripped or annotated tumour slices are still found, and orientation alone does not get a real slice refused (about 25 s)."""
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
    assert len(rows) == 20 and rows["as published"][0] > 0.85
    # inverted grey levels (a crude T2 look) are a known failure, not bounded here: README, "other sequences"
    rows.pop("grey levels inverted inside the head (T2-like fluid)")
    # skull-stripped slices: the bundled model, trained with half its images stripped (config.strip), misses 0.7%
    # of its 941 test tumours there (benchmarks/robustness.md); the one before it, trained without, missed 11.1%
    assert rows.pop("skull stripped (head outline shaved by 6%)")[1] < 6.0
    curves = ("narrower window (saturate above the 80th percentile)", "histogram-equalised", "S-shaped contrast curve")
    for name, (acc, miss, refused, _) in rows.items():
        # tumour -> 'no tumour' stays rare under every change. Grey-level curves are the hardest: on these 150
        # slices the bundled model misses 8.6-12.5% of tumours under them; the model trained without curves
        # (config.contrast=0, commit 9b4dd88) missed 25.0-33.6%
        assert miss < (20.0 if name in curves else 12.0), name
    # an orientation or noise is no reason to refuse a real slice. Measured on all 1,323 test MRI slices with the
    # feature distance at the 99.5th percentile (refusal.OOD_QUANTILE): 4.0-4.3% of sideways slices refused, 0.8%
    # upside down, 3.9% noisy (benchmarks/robustness.md); on these 150, 4.7% sideways and 5.3% noisy. At the
    # 99.8th percentile (the model before) 2.8-2.9%, 0.5% and 2.7% on all of them: the lower threshold, which
    # refuses an abdominal MR slice the higher one let through, costs refusals of real slices changed like this
    for name in ("left-right flip", "upside down (vertical flip)", "turned 180 degrees"):
        assert rows[name][2] < 5.0, name
    for name in ("turned 90 degrees", "turned 270 degrees", "noise (3% of the range)"):
        assert rows[name][2] < 8.0, name
