"""Figures are valid PNGs written atomically; the HTML report is self-contained and escaped."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tumorlens import metrics as M
from tumorlens import fileio, plots
from tumorlens.config import CLASSES, DISCLAIMER, TumorlensError
from tumorlens.report import build_report, table_html, write_html_report


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    logits = rng.normal(size=(120, 4)) * 1.5 + 3.0 * np.eye(4)[y]
    return y, M.softmax(logits), M.softmax(logits, 2.0)


def _check_png(path, folder):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_importing_plots_leaves_pyplot_alone():
    # the module uses the OO API only, so importing it never loads pyplot (no global backend or state)
    code = "import sys, tumorlens.plots, tumorlens.report; print('matplotlib.pyplot' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_every_plot_writes_a_valid_png(tmp_path, data):
    y, probs, probs_t = data
    pred = probs.argmax(1)
    cm = M.confusion_matrix(y, pred, 4)
    history = [{"epoch": e, "train_loss": 1.5 / e, "val_loss": 1.6 / e + 0.02 * e,
                "train_acc": 1 - 0.5 / e, "val_acc": None if e == 2 else 1 - 0.6 / e} for e in range(1, 7)]
    out = tmp_path / "figs"
    paths = [
        plots.plot_confusion(cm, CLASSES, out / "cm.png"),
        plots.plot_confusion(cm, CLASSES, out / "cm_norm.png", normalize=True),
        plots.plot_roc(y, probs, CLASSES, out / "roc.png"),
        plots.plot_history(history, out / "history.png"),
        plots.plot_reliability(probs, y, out / "rel.png"),
        plots.plot_reliability(probs, y, out / "rel_ts.png", probs_after=probs_t),
        plots.plot_risk_coverage(probs.max(1), pred == y, out / "rc.png"),
    ]
    for p in paths:
        _check_png(p, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    # overwriting an existing file goes through the same atomic path
    plots.plot_confusion(cm, CLASSES, out / "cm.png", normalize=True)
    _check_png(out / "cm.png", out)
    # permissions as a plain open() would give, not mkstemp's private 0o600
    assert (paths[0].stat().st_mode & 0o777) == fileio._FILE_MODE
    uri = plots.png_to_data_uri(paths[0])
    assert uri.startswith("data:image/png;base64,iVBORw0KGgo")


def test_roc_plot_with_absent_class(tmp_path):
    y = np.array([0, 1, 3, 0, 1, 3])
    probs = M.softmax(np.eye(4)[y] * 2)
    _check_png(plots.plot_roc(y, probs, CLASSES, tmp_path / "roc.png"), tmp_path)


def test_failed_plot_leaves_nothing(tmp_path):
    with pytest.raises(TumorlensError):
        plots.plot_confusion(np.zeros((3, 3)), CLASSES, tmp_path / "bad.png")
    with pytest.raises(TumorlensError):
        plots.plot_history([], tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(TumorlensError):
        plots.png_to_data_uri(tmp_path / "x.png")


def test_report_is_self_contained_and_escaped(tmp_path, data):
    y, probs, _ = data
    fig = plots.plot_confusion(M.confusion_matrix(y, probs.argmax(1), 4), CLASSES, tmp_path / "cm.png")
    summary = M.summarize(y, probs, CLASSES)
    title = '<script>alert("x")</script> & eval'
    out = build_report(tmp_path / "out" / "report.html", title, metrics=summary,
                       tables_html=[table_html([{"model": "cnn<lstm>", "acc": 0.91234}])],
                       figures=[("Confusion <matrix>", fig)],
                       extra_sections=[("Notes & caveats", "<p>Small test set.</p>")])
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; eval" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "data:image/png;base64," in text
    assert text.count(DISCLAIMER) >= 2
    assert text.index(DISCLAIMER) < text.index("<h2>")  # at the top, before any section
    assert text.rindex(DISCLAIMER) > text.index("Notes &amp; caveats")  # and again at the bottom
    assert "cnn&lt;lstm&gt;" in text and "0.9123" in text and "Confusion &lt;matrix&gt;" in text
    assert "glioma" in text and "Missed tumours" in text
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


def test_report_refuses_external_or_scripted_fragments(tmp_path):
    for bad in ['<img src="https://example.org/x.png">', "<script>1</script>", '<a href="//evil">x</a>',
                '<div style="background:url(http://x)">', '<p onclick="x()">', '<a href="javascript:x()">']:
        with pytest.raises(TumorlensError):
            build_report(tmp_path / "r.html", "t", extra_sections=[("s", bad)])
    assert not (tmp_path / "r.html").exists()
    # text that merely looks like an attribute is fine, as are in-page anchors
    write_html_report(tmp_path / "r.html", "t", sections=[("s", '<p>one = 1</p><a href="#top">top</a>')])
    assert (tmp_path / "r.html").is_file()


def test_table_html_forms():
    a = table_html([{"x": 1, "y": float("nan")}, {"x": 2, "z": [0.1, 0.2]}], caption="c<")
    assert "<th>x</th><th>y</th><th>z</th>" in a and "n/a" in a and "[0.1000, 0.2000]" in a and "c&lt;" in a
    b = table_html([[1, "<b>"]], header=["n", "s"])
    assert "<td>&lt;b&gt;</td>" in b and "<th>n</th>" in b
