"""The bundled model must not call a tumour 'no tumour' just because the slice looks like the no-tumour
source (size, border, RGB JPEG). Runs benchmarks/shortcut_check.py on the real data (about 30 s)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import KAGGLE, needs_kaggle


@needs_kaggle()
def test_restyled_tumour_slices_are_rarely_called_no_tumour(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "shortcut_check.py"
    r = subprocess.run([sys.executable, str(script), "--data", str(KAGGLE), "--out", str(tmp_path / "s.md")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rates = [float(m) for m in re.findall(r"\| (\d+\.\d)% \(", r.stdout)]
    assert len(rates) == 2
    # a model that learned the source would miss most of them (a public one: 72% of external tumours)
    assert rates[1] < 15.0 and rates[1] - rates[0] < 10.0
