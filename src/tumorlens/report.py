"""A single self-contained HTML evaluation report.

The file embeds every figure as a base64 `data:` URI and carries its CSS inline; it has no scripts and no
external links, and a Content-Security-Policy meta tag forbids the browser from fetching anything, so it opens
offline, can be mailed or archived as one file, and cannot leak that it was opened. The research-use
disclaimer is shown at the top and at the bottom. All text that comes from callers (titles, captions,
headings, table cells) is HTML-escaped; the only raw HTML accepted is the `tables_html` / section fragments,
which are checked for scripts and external references. Files are written atomically.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .config import DISCLAIMER, TumorlensError
from .fileio import atomic_write_bytes
from .plots import png_to_data_uri

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d8dde6; --accent:#2f5d9e; --warn-bg:#fff4e5; --warn:#8a4b00; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       max-width: 1100px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.subtitle { color: var(--muted); margin: 0 0 1em; }
.disclaimer { background: var(--warn-bg); color: var(--warn); border: 1px solid #f0c27a; border-radius: 6px;
              padding: 10px 14px; font-weight: 600; margin: 12px 0; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 0.92em; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th { background: #f3f5f9; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; }
details pre { background: #f7f8fa; border: 1px solid var(--line); padding: 10px; overflow-x: auto;
              font-size: 0.82em; }
.warning { background: #fdecea; color: #8a1c12; border: 1px solid #e8a49c; border-radius: 6px;
           padding: 10px 14px; font-weight: 600; margin: 12px 0; }
footer { margin-top: 2.5em; }
"""

# Nothing may be fetched: images only from data: URIs, styles only inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_FORBIDDEN = [
    (re.compile(r"<\s*(script|iframe|object|embed|link|meta|base)\b", re.I), "a <{0}> element"),
    (re.compile(r"<[^>]*\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"<[^>]*\s(?:src|href|srcset|action|formaction|poster|data|xlink:href)\s*=\s*[\"']?\s*"
                r"(?:(?!data:)[a-z][a-z0-9+.\-]*:|//)", re.I), "an external or scripted URL"),
    (re.compile(r"url\(\s*[\"']?\s*(?:(?!data:)[a-z][a-z0-9+.\-]*:|//)", re.I), "an external CSS url()"),
    (re.compile(r"@import", re.I), "a CSS @import"),
]


def _check_fragment(fragment: str, where: str) -> str:
    """Refuse caller HTML that would run code or fetch anything, which would break self-containment."""
    for pattern, what in _FORBIDDEN:
        m = pattern.search(fragment)
        if m:
            raise TumorlensError(f"{where} contains {what.format(*(m.groups() or ('',)))} "
                                 "(the report must stay self-contained and script-free)")
    return fragment


def _fmt(v: Any) -> str:
    """Cell text: None/NaN -> 'n/a', floats with 4 decimals, [lo, hi] pairs as intervals."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy scalar
        return _fmt(v.item())
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) or x is None for x in v):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return str(v)


def table_html(rows: Sequence[dict[str, Any]] | Sequence[Sequence[Any]], header: Sequence[str] | None = None,
               caption: str | None = None) -> str:
    """An escaped HTML table from a list of dicts (columns = keys in first-seen order, or `header`) or
    from `header` plus a list of row sequences. Numbers are formatted by `_fmt`; None/NaN show as n/a."""
    rows = list(rows)
    if rows and isinstance(rows[0], dict):
        if header is None:
            header = list(dict.fromkeys(k for r in rows for k in r))
        body = [[r.get(h) for h in header] for r in rows]  # type: ignore[union-attr]
    else:
        body = [list(r) for r in rows]
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    if header:
        parts.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>")
    parts.append("<tbody>")
    for r in body:
        parts.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def metrics_html(metrics: dict[str, Any]) -> str:
    """Tables for a `metrics.summarize` dict: headline numbers, per-class scores, confusion matrix, tumour
    miss rate, and the raw JSON in a collapsed block. Unknown top-level scalars join the headline table."""
    m = metrics
    out: list[str] = []
    head: list[tuple[str, Any]] = []
    if "n" in m:
        head.append(("test samples", m["n"]))
    if "accuracy" in m:
        ci = m.get("accuracy_ci")
        acc = _fmt(m["accuracy"]) + (f"  (95% CI {_fmt(ci[0])} to {_fmt(ci[1])}, Wilson)" if ci else "")
        head.append(("accuracy", acc))
    labels = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1",
              "ece": "expected calibration error (ECE)", "brier": "Brier score (multi-class)",
              "nll": "negative log-likelihood", "mean_confidence": "mean top-class confidence"}
    for key, label in labels.items():
        if key in m:
            head.append((label, m[key]))
    auc = m.get("roc_auc") or {}
    for key in ("macro", "micro"):
        if key in auc:
            head.append((f"ROC AUC, {key}-average (one-vs-rest)", auc[key]))
    # "disclaimer" (metrics.json read back) is already on the page, at the top and the bottom
    known = set(labels) | {"n", "accuracy", "accuracy_ci", "roc_auc", "report", "class_names", "miss_rate",
                           "confusion_matrix", "confusion_matrix_normalized", "disclaimer"}
    for key, v in m.items():
        if key not in known and (v is None or isinstance(v, (int, float, str, bool))):
            head.append((key.replace("_", " "), v))
    if head:
        out.append(table_html(head, header=["metric", "value"], caption="Headline metrics"))

    names = m.get("class_names") or [k for k, v in (m.get("report") or {}).items()
                                     if isinstance(v, dict) and k not in ("macro avg", "weighted avg")]
    rep = m.get("report") or {}
    if rep and names:
        rows = []
        for name in list(names) + ["macro avg", "weighted avg"]:
            d = rep.get(name)
            if not isinstance(d, dict):
                continue
            row = {"class": name, "precision": d.get("precision"), "recall (sensitivity)": d.get("recall"),
                   "F1": d.get("f1-score"), "support": d.get("support")}
            if auc:
                row["ROC AUC"] = auc.get(name, auc.get(name.split()[0]) if name.endswith(" avg") else None)
            rows.append(row)
        out.append(table_html(rows, caption="Per-class scores"))

    cm, cmn = m.get("confusion_matrix"), m.get("confusion_matrix_normalized")
    if cm and names and len(cm) == len(names):
        rows = []
        for i, name in enumerate(names):
            cells = []
            for j in range(len(names)):
                frac = cmn[i][j] if cmn else None
                # one decimal: .0% showed 1 of 330 as "1 (0%)"
                cells.append(f"{cm[i][j]}" + (f" ({frac:.1%})" if isinstance(frac, (int, float)) else ""))
            rows.append([name] + cells)
        out.append(table_html(rows, header=["true \\ predicted"] + list(names),
                              caption="Confusion matrix: counts (row share)"))

    mr = m.get("miss_rate")
    if mr:
        def mrow(label: str, e: dict[str, Any]) -> list[Any]:
            return [label, e.get("count"), e.get("n"), e.get("rate"), e.get("ci")]
        rows = [mrow(f"all tumours called {mr.get('negative_class')}", mr["overall"])]
        rows += [mrow(f"{k} called {mr.get('negative_class')}", e) for k, e in mr.get("per_class", {}).items()]
        if "false_alarm" in mr:
            rows.append(mrow(f"{mr.get('negative_class')} called a tumour (false alarm)", mr["false_alarm"]))
        out.append(table_html(rows, header=["error", "count", "of", "rate", "95% CI (Wilson)"],
                              caption="Missed tumours"))

    raw = json.dumps(m, indent=2, sort_keys=True, default=str, allow_nan=True)
    out.append(f"<details><summary>Raw metrics (JSON)</summary><pre>{html.escape(raw)}</pre></details>")
    return "\n".join(out)


def build_report(path: str | os.PathLike, title: str, metrics: dict[str, Any] | None = None,
                 tables_html: Iterable[str] = (), figures: Iterable[tuple[str, str | os.PathLike]] = (),
                 extra_sections: Iterable[tuple[str, str]] = (), subtitle: str | None = None,
                 warnings: Iterable[str] = ()) -> Path:
    """Write one self-contained HTML report and return its path.

    metrics: a `metrics.summarize` dict (rendered by `metrics_html`), or None.
    tables_html: ready HTML fragments (e.g. from `table_html`), shown under "Tables".
    figures: (caption, png_path) pairs, embedded as base64 data URIs.
    extra_sections: (heading, html_fragment) pairs appended at the end.
    warnings: sentences shown under the disclaimer, boxed, such as scores inflated by test images that the
      model was trained on: what a reader must see before any number.
    Text arguments are escaped; HTML fragments are refused if they contain scripts or external URLs.
    """
    path = Path(path)
    esc = html.escape
    body: list[str] = [f"<h1>{esc(title)}</h1>"]
    if subtitle:
        body.append(f'<p class="subtitle">{esc(subtitle)}</p>')
    body.append(f'<div class="disclaimer" role="note">{esc(DISCLAIMER)}</div>')
    body.extend(f'<div class="warning" role="alert">Warning: {esc(w)}</div>' for w in warnings)
    if metrics:
        body.append("<section><h2>Metrics</h2>")
        body.append(metrics_html(metrics))
        body.append("</section>")
    tables = [_check_fragment(t, "a table fragment") for t in tables_html]
    if tables:
        body.append("<section><h2>Tables</h2>" + "\n".join(tables) + "</section>")
    figs = list(figures)
    if figs:
        body.append("<section><h2>Figures</h2>")
        for caption, png in figs:
            if not Path(png).is_file():
                raise TumorlensError(f"figure {png} does not exist")
            body.append(f'<figure><img src="{png_to_data_uri(png)}" alt="{esc(caption, quote=True)}">'
                        f"<figcaption>{esc(caption)}</figcaption></figure>")
        body.append("</section>")
    for heading, fragment in extra_sections:
        body.append(f"<section><h2>{esc(heading)}</h2>{_check_fragment(fragment, f'section {heading!r}')}"
                    "</section>")
    body.append(f'<footer><div class="disclaimer" role="note">{esc(DISCLAIMER)}</div></footer>')
    doc = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           "<meta name=\"referrer\" content=\"no-referrer\">\n"
           f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
           + "\n".join(body) + "\n</body>\n</html>\n")
    atomic_write_bytes(path, doc.encode("utf-8"))
    return path


def write_html_report(path: str | os.PathLike, title: str, sections: Iterable[tuple[str, str]] = (),
                      images: Iterable[tuple[str, str | os.PathLike]] = (),
                      metrics: dict[str, Any] | None = None) -> Path:
    """Convenience form of `build_report`: (heading, html) sections and (caption, png_path) images."""
    return build_report(path, title, metrics=metrics, figures=images, extra_sections=sections)
