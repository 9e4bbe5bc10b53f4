"""`tumorlens explain` and `tumorlens localize`. Wired into the CLI by `cli.py` with
`from .cli_explain import add_parsers as _explain_parsers; _explain_parsers(sub)`.

explain: for every input image (files, folders read recursively, globs) writes, into --out,
  <name>.png   the scan with the heatmap overlaid, colour bar, title, disclaimer; the scan drawn at its own
               resolution from 561 to 2,048 px wide (narrower ones enlarged, wider ones reduced:
               explain.overlay_png);
  <name>.npy   the heatmap, float32, values in [0, 1], on the slice's pixel grid as displayed: an image file's
               own pixels (after its EXIF orientation); a DICOM with non-square pixels or a NIfTI slice on the
               square-pixel grid it is shown on (NIfTI in radiological orientation: anterior up, the patient's
               right on the left) - `heatmap_shape` in the record;
  <name>.json  the record: status, class probabilities, method, explained class, disclaimer.
<name> is the file's stem; stems that occur more than once among the inputs get their parent folders
(`a__scan`, `b__scan`) and, if still equal, their extension; a volume's slices get `_slice<k>` / `_frame<k>`
(three digits). `predict --explain DIR` names its overlays the same way (`<name>_gradcam.png`), so the two
commands' outputs for one input can be matched by name. The overlay's title names the file (with its slice or
frame), the answer, the method and the explained class.
A map with no positive value anywhere (max <= explain.EMPTY_MAP_MAX) is not passed off as a result: its record
says `"heatmap_empty": true`, its overlay's title says "no evidence for ... : empty map", and stderr gets a
one-line warning (the input still counts as explained: "no evidence" is the method's honest answer).
Unreadable or refused inputs are reported on stderr, one line each, and skipped; the exit code is 1 if any
input was not explained, else 0.

localize: see `tumorlens.localize`.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import DISCLAIMER, TumorlensError

# explain.METHODS, repeated so that building the `tumorlens` parser does not import torch (1.9 s);
# tests/test_explain.py checks that the two agree. The default method is looked up when a command runs.
METHODS: tuple[str, ...] = ("gradcam", "hirescam", "layercam", "multilayer", "fused", "gated")


# ----------------------------------------------------------------------------------------- naming
def _safe(name: str) -> str:
    """A file-name-safe form of `name`: every run of characters other than ASCII letters, digits, '.', '_' and
    '-' (control characters such as newlines included) becomes one '_', so names are portable and printable."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    return s[:120]


OUTPUT_SUFFIXES = (".png", ".npy", ".json")  # what `explain` writes for each name
PREDICT_SUFFIXES = ("_gradcam.png",)  # what `predict --explain DIR` writes (the name kept for compatibility)


def _stem(path: str) -> str:
    """The file name without its extension, `.nii.gz` counted as one: `vol.nii.gz` and `vol.nii` both give `vol`
    (Path.stem kept `vol.nii`, so the two named their outputs differently)."""
    name = Path(path).name
    return name[:-len(".nii.gz")] if name.lower().endswith(".nii.gz") and len(name) > 7 else Path(path).stem


def output_names(paths: list[str], out: Path | None = None,
                 suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> dict[str, str]:
    """A distinct output name (no extension) for each input path; see the module docstring. Names differ also
    when case is ignored (case-insensitive file systems). With the output folder `out`, a name whose outputs
    (`name + suffix` for each of `suffixes`) would overwrite one of the inputs (`--out` is the input's folder)
    is numbered like a duplicate."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for p in dict.fromkeys(paths):
        by_stem[_safe(_stem(p)).lower()].append(p)
    names: dict[str, str] = {}
    for group in by_stem.values():
        if len(group) == 1:
            names[group[0]] = _safe(_stem(group[0]))
            continue
        parts = {p: Path(p).resolve().parts[:-1] for p in group}
        depth = max(len(v) for v in parts.values())
        chosen = None
        for k in range(1, depth + 1):
            cand = {p: "__".join([_safe(x) for x in parts[p][-k:]] + [_safe(_stem(p))]) for p in group}
            if len({c.lower() for c in cand.values()}) == len(group):
                chosen = cand
                break
        if chosen is None:  # same folder, same stem: scan.png and scan.jpg
            chosen = {p: "__".join([_safe(x) for x in parts[p][-1:]] + [_safe(_stem(p))])
                      + "_" + _safe(Path(p).suffix.lstrip(".") or "noext") for p in group}
        names.update(chosen)
    # a disambiguated name may equal another input's plain stem (case-insensitively), or its outputs an input
    # in `out`: number the later one
    used = inputs_named_like_outputs(paths, out, suffixes) if out is not None else set()
    return {p: claim_name(name, used) for p, name in names.items()}


def _where(rec: Any) -> tuple[str, int] | None:
    """("slice", k) / ("frame", k) for a record of one slice or frame of a file, else None."""
    for kind in ("slice", "frame"):
        if getattr(rec, kind, None) is not None:
            return kind, int(getattr(rec, kind))
    return None


def _where_suffix(rec: Any) -> str:
    """`_slice<k>` / `_frame<k>` (three digits) for a record of one slice or frame of a file, else ''."""
    w = _where(rec)
    return f"_{w[0]}{w[1]:03d}" if w else ""


def output_namer(paths: list[str], out: Path, suffixes: tuple[str, ...]) -> Callable[[Any], str]:
    """For a run writing into `out`: record -> its output name (no suffix), as `output_names` names its file
    plus its slice or frame, numbered by `claim_name` so that no output overwrites another or an input lying in
    `out`. Shared by `explain` and `predict --explain DIR`."""
    names = output_names(paths, out, suffixes)
    used = inputs_named_like_outputs(paths, out, suffixes)

    def name(rec: Any) -> str:
        return claim_name((names.get(rec.path) or _safe(_stem(rec.path))) + _where_suffix(rec), used)

    return name


def claim_name(base: str, used: set[str]) -> str:
    """`base`, or `base_2`, `base_3` ... when that name (ignoring case) is already in `used`; the result is
    added to `used`. Guards against one output overwriting another within a run when a slice's name
    (`a_slice004`) equals another input's (`a_slice004.png`) or one file is given twice."""
    name, n = base, 2
    while name.lower() in used:
        name = f"{base}_{n}"
        n += 1
    used.add(name.lower())
    return name


def inputs_named_like_outputs(paths: list[str], out: Path, suffixes: tuple[str, ...]) -> set[str]:
    """The names (lower case, suffix removed) whose outputs would be one of the inputs lying in `out`: the
    starting `used` set of `claim_name`, so that no slice's or frame's output overwrites an input either."""
    here = out.resolve()
    found = set()
    for p in paths:
        q = Path(p)
        if q.resolve().parent == here:
            found.update(q.name[:-len(ext)].lower() for ext in suffixes if q.name.lower().endswith(ext))
    return found


def printable(text: str) -> str:
    """`text` with control characters (newlines, tabs, escapes) shown as '?', for one-line titles and messages."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _where_words(rec: Any) -> str:
    """' slice <k>' / ' frame <k>' for a record of one slice or frame of a file, else ''."""
    w = _where(rec)
    return f" {w[0]} {w[1]}" if w else ""


def shown_name(rec: Any) -> str:
    """The input's file name as people see it in overlay titles, with its slice or frame if any."""
    return printable(Path(rec.path).name) + _where_words(rec)


def overlay_title(rec: Any, method: str, explained: str, empty: bool) -> str:
    """The overlay's two-line title: which input (slice / frame), the answer, and which method's map for which
    class - or, for an empty map, that the method found no evidence, so a blank overlay is never read as a
    result. Shared by `explain` and `predict --explain`."""
    title = f"{shown_name(rec)}: {rec.label}"
    if rec.confidence is not None:
        title += f" ({rec.confidence:.2f})"
    if rec.status != "ok":
        title += f" [{rec.status}]"
    if empty:
        return title + f"\nno evidence for '{explained}' by {method}: empty map"
    p = (rec.probabilities or {}).get(explained)
    return title + f"\n{method} map for '{explained}'" + (f" (p={p:.2f})" if p is not None else "")


def warn_empty_map(rec: Any, method: str, explained: str) -> None:
    """One line on stderr saying that this input's map is empty (see the module docstring)."""
    print(f"{printable(str(rec.path))}{_where_words(rec)}: the {method} map for '{explained}' is empty "
          f"(no positive evidence anywhere); its overlay shows no heat", file=sys.stderr)


def _report(rec: Any, problem: str | None = None) -> None:
    """One stderr line for an input that was not explained, naming its frame or slice as `predict` does."""
    reason = problem or rec.reason or rec.status
    where = "".join(f" {k} {getattr(rec, k)}" for k in ("frame", "slice") if getattr(rec, k, None) is not None)
    line = reason if str(rec.path) in reason and not where else f"{rec.path}{where}: {reason}"
    print(line, file=sys.stderr)


def _progress(desc: str):
    """(update(done, total=None), close): a tqdm bar on stderr, drawn only when it is a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="img", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def update(done: int, total: int | None = None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return update, bar.close


def inputs_but_our_outputs(inputs: list[str], out: Path, is_output: Any) -> list[tuple[str, str | None]]:
    """`predict.list_inputs`: the inputs, less what `is_output` takes for our own outputs of an earlier run
    among the files found in folders inside the output folder `out`, with a note on stderr of how many were
    ignored. Shared by `explain` and `predict --explain DIR`."""
    from .predict import list_inputs

    listed, ours = list_inputs(inputs, out, is_output)
    if ours:
        print(f"ignored {ours} file(s) inside the output folder {out}", file=sys.stderr)
    return listed


# ----------------------------------------------------------------------------------------- explain
def cmd_explain(a: argparse.Namespace) -> int:
    from .explain import default_method, heatmap_is_empty, overlay_png
    from .metrics import jsonable
    from .fileio import atomic_write_bytes
    from .predict import Predictor

    pred = Predictor(a.model, refuse=not a.no_refuse)
    method = a.method or default_method(pred.model)
    target = None
    if a.target_class is not None:
        t = a.target_class.strip().lower()
        if t not in pred.classes:
            raise TumorlensError(f"--target-class {a.target_class!r} is not one of the model's classes "
                                 f"({', '.join(pred.classes)})")
        target = pred.classes.index(t)
    pred.explain_method = method
    pred.explain_target = target
    from .fileio import prepare_folder

    out = prepare_folder(a.out)  # an existing file of that name gave a bare "File exists"

    files, failed, done, n_empty = [], 0, 0, 0
    # an overlay we wrote is a PNG beside its record (.json); the .json and .npy are skipped by name anyway
    for path, err in inputs_but_our_outputs(a.inputs, out, lambda q: q.suffix.lower() == ".png"
                                            and q.with_suffix(".json").is_file()):
        if err:
            print(err, file=sys.stderr)
            failed += 1
        else:
            files.append(path)
    output_name = output_namer(files, out, OUTPUT_SUFFIXES)
    update, close = _progress("explaining")
    seen_files = 0
    last = None
    try:
        for rec in pred.predict_paths(files, explain=True, slice=a.slice, named=a.inputs):
            if rec.path != last:
                seen_files += 1
                last = rec.path
                update(seen_files, len(files))
            if rec.status == "error":
                _report(rec)
                failed += 1
                continue
            if rec.heatmap is None:
                _report(rec, f"not explained ({rec.status}: {rec.reason or 'no heatmap'})")
                failed += 1
                continue
            name = output_name(rec)
            heat = np.asarray(rec.heatmap, dtype=np.float32)
            explained = pred.classes[target] if target is not None else rec.label
            empty = heatmap_is_empty(heat)
            if empty:
                warn_empty_map(rec, method, explained)
                n_empty += 1
            # the record is the image's last file and names the overlay, map and method beside it: an earlier
            # run's record of the same name goes first, so that a run interrupted between the three files (with
            # another --method, say) leaves no record describing a map it did not make (an I/O audit)
            (out / f"{name}.json").unlink(missing_ok=True)
            png = overlay_png(rec.image, heat, out / f"{name}.png", overlay_title(rec, method, explained, empty))
            buf = io.BytesIO()
            np.save(buf, heat)
            atomic_write_bytes(out / f"{name}.npy", buf.getvalue())
            doc = {**rec.to_dict(), "disclaimer": DISCLAIMER, "method": method, "explained_class": explained,
                   "explained_class_is": "given" if target is not None else "predicted",
                   "heatmap_shape": list(heat.shape), "heatmap_empty": empty,
                   "overlay": png.name, "heatmap": f"{name}.npy",
                   "model_sha256": pred.ckpt.sha256}
            text = json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n"
            atomic_write_bytes(out / f"{name}.json", text.encode("utf-8"))
            done += 1
    finally:
        close()
    total = done + failed
    print(f"explained {done} of {total} input(s) with {method}"
          + (f" ({n_empty} with an empty map: no evidence)" if n_empty else "")
          + (f"; wrote {out}" if done else "; nothing written"))
    print(DISCLAIMER)
    if failed:
        print(f"{failed} input(s) not explained (see above)", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- localize
def cmd_localize(a: argparse.Namespace) -> int:
    from .fileio import outside_of
    from .localize import localize, parse_folds

    outside_of(a.out, "--out", (a.data,))  # results written into the figshare folder (an audit)
    update, close = _progress("localizing")
    try:
        doc = localize(a.model, a.data, a.out, folds=parse_folds(a.folds), methods=a.methods, target=a.target,
                       limit=a.limit, seed=a.seed, progress=update)
    finally:
        close()
    g = doc["groups"]["overall"]
    print(f"Localisation on {doc['data']['n_images']} slices of fold(s) {', '.join(map(str, doc['data']['folds']))} "
          f"({doc['data']['n_skipped']} skipped); model accuracy {g['accuracy']:.3f}; "
          f"mean mask fraction {g['mask_fraction_mean']:.3f}")
    rows = []
    for s, res in doc["results"].items():
        o = res["overall"]
        rows.append([s, f"{o['pointing']['rate']:.3f} [{o['pointing']['ci95'][0]:.3f}, {o['pointing']['ci95'][1]:.3f}]",
                     f"{o['energy']['mean']:.3f} [{o['energy']['ci95'][0]:.3f}, {o['energy']['ci95'][1]:.3f}]",
                     f"{o['iou']['mean']:.3f}", f"{o['dice']['mean']:.3f}"])
    head = ["maps", "pointing game [95% CI]", "energy in mask [95% CI]", "IoU", "Dice"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths]] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    for m, s in doc["sanity_check"]["methods"].items():
        print(f"sanity check {m}: rank correlation trained vs random weights {s['spearman_mean']:.3f}, "
              f"SSIM {s['ssim_mean']:.3f} -> {'passes' if s['passes'] else 'FAILS'}")
    best = doc["recommended_method"]
    v = doc["verdicts"][best]
    met = [k for k, x in v.items() if x and k != "all"]
    failed = [k for k, x in v.items() if not x and k != "all"]
    print(f"recommended method: {best} (targets met: {'all' if v['all'] else ', '.join(met) or 'none'}"
          + (f"; NOT met: {', '.join(failed)}" if failed else "") + f"); the default is {doc['default_method']}")
    print("pointing game: share of slices whose map peaks inside the tumour mask; energy in mask: share of the "
          "map's mass inside it (a map spread at random scores the mask fraction). 'random' and 'center' are "
          "baselines, '@randomized' the same method on randomly initialised weights (a map that does not "
          "change is not explaining the model)")
    n = doc["data"]["n_images"]
    if n < 100:
        print(f"only {n} slices: the confidence intervals are wide, so read these numbers as a rough check",
              file=sys.stderr)
    print(f"wrote {Path(a.out) / 'localization.json'}")
    print(DISCLAIMER)
    return 0


# ------------------------------------------------------------------------------------------ parser
def add_parsers(sub: Any) -> None:
    """Add `explain` and `localize` to the `tumorlens` subcommands."""
    s = sub.add_parser("explain", help="heatmaps (Grad-CAM and relatives) over the original images",
                       description=f"Write a heatmap overlay PNG, the map (.npy) and a JSON record for each "
                                   f"input. {DISCLAIMER}")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or globs")
    s.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--method", choices=METHODS, default=None,
                   help="heatmap method (default: `gated` for a model with the tumour gate, else `fused`; each JSON "
                        "records the one used)")
    s.add_argument("--target-class", help="explain this class instead of the predicted one")
    # as predict has it (and the web API's ?slice=): without it a map of a slice outside the automatic subset
    # could not be had (a helper's audit)
    s.add_argument("--slice", type=int, help="NIfTI: explain this axial slice only (0 = most inferior)")
    s.add_argument("--no-refuse", action="store_true",
                   help="explain inputs even if they do not look like brain MRI slices")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("localize", help="do the heatmaps point at the tumour? (figshare masks)",
                       description="Pointing game, energy in mask, IoU/Dice of the heatmaps against tumour "
                                   f"masks, with baselines and a randomisation sanity check. {DISCLAIMER}")
    s.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    s.add_argument("--data", required=True, help="folder with metadata.csv, images/ and masks/ (figshare layout)")
    s.add_argument("--folds", nargs="+", help="cv folds to use (default: the checkpoint split's test folds)")
    s.add_argument("--methods", nargs="+", choices=METHODS, help="methods to measure (default: all)")
    s.add_argument("--target", choices=["predicted", "true"], default="predicted",
                   help="explain the predicted class (default) or the labelled one")
    s.add_argument("--limit", type=int, help="use at most this many slices (quick runs)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=cmd_localize)
