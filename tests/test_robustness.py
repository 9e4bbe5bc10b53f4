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
        r"^\| ([^|]+?) \| ([\d.]+) \([^)]*\) \| ([\d.]+)% \([^)]*\) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|$", r.stdout, re.M)}
    assert len(rows) == 20 and rows["as published"][0] > 0.85
    # inverted grey levels (a crude T2 look): the bundled model, trained with T2-like renderings (config.t2), misses
    # 8.6% of these 150 slices' tumours there (5.3% of all 941); the model before it, trained without, 58.4% of all
    assert rows.pop("grey levels inverted inside the head (T2-like fluid)")[1] < 20.0
    # skull-stripped slices: the bundled model, trained with half its images stripped (config.strip), misses 2.0%
    # of its 941 test tumours there (benchmarks/robustness.md); the first model trained without missed 11.1%
    assert rows.pop("skull stripped (head outline shaved by 6%)")[1] < 6.0
    curves = ("narrower window (saturate above the 80th percentile)", "histogram-equalised", "S-shaped contrast curve")
    for name, (acc, miss, refused, _, by_distance, tumour_refused) in rows.items():
        assert by_distance <= refused and tumour_refused <= 100.0, name
        # tumour -> 'no tumour' stays rare under every change. Grey-level curves are the hardest: on these 150
        # slices the bundled model misses 4.7-11.7% of tumours under them; the model trained without curves
        # (config.contrast=0, commit 9b4dd88) missed 25.0-33.6%
        assert miss < (20.0 if name in curves else 12.0), name
    # an orientation or noise is no reason to refuse a real slice. The bundled model (trained with T2-like
    # renderings, config.t2; feature distance at the 99.8th percentile, refusal.OOD_QUANTILE) refuses 7.2-7.6% of
    # its 1,323 test MRI slices turned sideways, 0.6% upside down and 3.6% noisy (benchmarks/robustness.md); on
    # these 150, 10.7% sideways and 4.7% noisy. The model before it refused 4.0-4.3% sideways (4.7% on these 150);
    # at the 99.5th percentile this one refused 20.9% of all sideways slices. The bound for sideways slices was 8%
    # before this model: the trade is in docs/experiments.md (the T2-like rendering). Its refusal refitted with all
    # 83 listed CT slices out of the distance's fit, and the look-alike detector added (2026-11-28), it refuses
    # 7.4-8.5% of all sideways slices (11.3-12.7% of these 150, the bound 12% before): the trade is in
    # docs/experiments.md (the look-alike detector)
    for name in ("left-right flip", "upside down (vertical flip)", "turned 180 degrees"):
        assert rows[name][2] < 5.0, name
    for name in ("turned 90 degrees", "turned 270 degrees"):
        assert rows[name][2] < 14.0, name
    assert rows["noise (3% of the range)"][2] < 12.0
