"""The README's Python API example runs as written (on a phantom JPEG and array) and says what it shows."""
from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from predict_helpers import phantom

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(phantom("glioma", 0, 256)).convert("RGB").save("scan.jpg", quality=92)
    (tmp_path / "scans").mkdir()
    Image.fromarray(phantom("meningioma", 1, 256)).save(tmp_path / "scans" / "a.png")
    env = {"array": phantom("pituitary", 2, 256)}
    exec(compile(code, "README.md", "exec"), env)  # noqa: S102 - the README's own example
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] in ("ok", "uncertain", "rejected") and len(out) == 2
    assert "'path': 'scans/a.png'" in out[1]
    assert env["rec"].path.endswith("a.png")
    heat = env["heat"]  # the phantom in memory is answered, so its heatmap is there, at its own resolution
    assert heat is not None and heat.shape == env["array"].shape and 0.0 <= heat.min() <= heat.max() <= 1.0
