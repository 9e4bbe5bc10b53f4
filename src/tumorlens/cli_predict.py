"""`tumorlens predict` and `tumorlens model-card`. Wired into the CLI by `cli.py` with
`from .cli_predict import add_parsers; add_parsers(sub)`.

The CLI owns the terminal: records go to stdout in the chosen format, the disclaimer and notes to stderr
for machine formats (and into the table's header line for people).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from .config import DISCLAIMER, STORED_BEFORE, TumorlensError

CSV_COLUMNS = ["path", "frame", "slice", "status", "label", "confidence", "reason"]


# ------------------------------------------------------------------------------------------ predict
def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def format_table(records: list[dict[str, Any]], classes: Iterable[str]) -> str:
    """A person-readable table: one line per record, probabilities per class, reasons in the last column."""
    classes = list(classes)
    cols = ["path", "where", "status", "label", "confidence"] + classes + ["reason"]
    rows = []
    for r in records:
        where = f"frame {r['frame']}" if "frame" in r else (f"slice {r['slice']}" if "slice" in r else "")
        probs = r.get("probabilities") or {}
        rows.append([r["path"], where, r["status"], _cell(r.get("label")), _cell(r.get("confidence"))]
                    + [_cell(probs.get(c)) for c in classes] + [_cell(r.get("reason"))])
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(cols)]
    lines = [f"# tumorlens predict - {DISCLAIMER}"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append(f"# {len(records)} record(s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def format_csv(records: list[dict[str, Any]], classes: Iterable[str]) -> str:
    classes = list(classes)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS + [f"p_{c}" for c in classes])
    for r in records:
        probs = r.get("probabilities") or {}
        w.writerow([r.get(c, "") if r.get(c) is not None else "" for c in CSV_COLUMNS]
                   + [probs.get(c, "") for c in classes])
    return buf.getvalue()


def cmd_predict(a: argparse.Namespace) -> int:
    from .predict import Predictor

    if a.workers is not None and a.workers < 0:
        raise TumorlensError(f"--workers must be 0 or more, not {a.workers}")
    predictor = Predictor(a.model, backend=a.backend)
    explain_dir = Path(a.explain) if a.explain else None
    overlay = None
    method = None
    if explain_dir is not None:
        try:
            from .explain import heatmap_is_empty, overlay_png as overlay
        except ImportError as e:
            raise TumorlensError(f"--explain is not available in this installation ({e})") from None
        method = predictor.heatmap_method  # for the titles and records: the method the maps are made with
        from .fileio import prepare_folder

        prepare_folder(explain_dir, "--explain")  # an existing file of that name: one line naming it
    inputs = a.inputs
    if explain_dir is not None:
        # overlays from an earlier run must not come back as inputs when DIR lies in an input folder; the
        # listed paths (files, or inputs that fail) expand to themselves again in predict_paths
        from .cli_explain import (PREDICT_SUFFIXES, inputs_but_our_outputs, output_namer, overlay_title,
                                  warn_empty_map)

        inputs = [path for path, _ in inputs_but_our_outputs(
            a.inputs, explain_dir, lambda q: q.name.lower().endswith(PREDICT_SUFFIXES))]
        # named as `explain` names its outputs (distinct ignoring case, control characters dropped); a name
        # whose overlay would overwrite an input lying in DIR is numbered
        output_name = output_namer(inputs, explain_dir, PREDICT_SUFFIXES)
    if a.format != "table":
        print(f"tumorlens predict: {DISCLAIMER}", file=sys.stderr)
    out = sys.stdout
    recs: list[dict[str, Any]] = []
    any_error = False
    first = True
    if a.format == "json":
        out.write("[")
    for rec in predictor.predict_paths(inputs, explain=explain_dir is not None, slice=a.slice, named=a.inputs,
                                       workers=a.workers):
        d = rec.to_dict()
        any_error |= rec.status == "error"
        if overlay is not None and rec.heatmap is not None and rec.image is not None:
            p = explain_dir / (output_name(rec) + PREDICT_SUFFIXES[0])
            empty = heatmap_is_empty(rec.heatmap)
            if empty:
                warn_empty_map(rec, method, rec.label)
            overlay(rec.image, rec.heatmap, p, overlay_title(rec, method, rec.label, empty))
            d["overlay"] = str(p)
            d["heatmap_method"] = method
            d["heatmap_empty"] = empty
        if a.format in ("json", "jsonl"):
            # a saved JSON file is read by people too: each record carries the notice, as explain's records do
            # (stderr alone left a saved file without it; a helper's audit). CSV and the table keep theirs apart.
            d["disclaimer"] = DISCLAIMER
        if a.format == "jsonl":
            out.write(json.dumps(d) + "\n")
            out.flush()
        elif a.format == "json":
            out.write(("\n  " if first else ",\n  ") + json.dumps(d))
            first = False
        else:
            recs.append(d)
    if a.format == "json":
        out.write("\n]\n" if not first else "]\n")
    elif a.format == "csv":
        out.write(format_csv(recs, predictor.classes))
    elif a.format == "table":
        out.write(format_table(recs, predictor.classes))
    out.flush()
    return 1 if any_error else 0


# --------------------------------------------------------------------------------------- model card
def _pct(v: Any) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, (int, float)) else "n/a"


def _metrics_section(m: dict[str, Any], title: str) -> list[str]:
    out = [f"### {title}", ""]
    n = m.get("n")
    if "accuracy" in m:
        ci = m.get("accuracy_ci")
        ci_s = f" (95 % CI {_pct(ci[0])} - {_pct(ci[1])}, Wilson)" if ci and len(ci) == 2 else ""
        out.append(f"- accuracy: {_pct(m['accuracy'])}{ci_s}" + (f" on {n} images" if n else ""))
    for k, label in (("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1"),
                     ("weighted_f1", "weighted F1")):
        if isinstance(m.get(k), (int, float)):
            out.append(f"- {label}: {m[k]:.3f}")
    auc = m.get("roc_auc")
    if isinstance(auc, dict) and auc.get("macro") is not None:
        out.append(f"- ROC AUC (one-vs-rest, macro): {auc['macro']:.3f}")
    for k, label in (("ece", "ECE (15 bins)"), ("brier", "Brier score"), ("nll", "NLL")):
        if isinstance(m.get(k), (int, float)):
            out.append(f"- {label}: {m[k]:.4f}")
    mr = m.get("miss_rate")
    if isinstance(mr, dict) and isinstance(mr.get("overall"), dict):
        o = mr["overall"]
        ci = o.get("ci") or [None, None]
        out.append(f"- tumour called 'no tumour' (miss rate): {_pct(o.get('rate'))} "
                   f"({o.get('count')}/{o.get('n')}; 95 % CI {_pct(ci[0])} - {_pct(ci[1])})")
    cal = m.get("calibration")
    if isinstance(cal, dict) and isinstance(cal.get("ece_before"), (int, float)):
        out.append(f"- ECE before / after temperature scaling: {cal['ece_before']:.4f} / {cal['ece_after']:.4f}")
    sel = (m.get("selective") or {}).get("at_threshold")
    if isinstance(sel, dict) and isinstance(sel.get("accuracy"), (int, float)):
        out.append(f"- at the abstention threshold {sel['threshold']:.3f}, scoring every test slice with refusal "
                   f"off: {_pct(sel['coverage'])} above it, {_pct(sel['accuracy'])} of them correct")
    dep = m.get("deployed")
    if isinstance(dep, dict) and dep.get("n"):
        out.append(f"- as `tumorlens predict` answers the test files (refusal and abstention on): "
                   f"{dep['answered']}/{dep['n']} ({_pct(dep['coverage'])}) answered, "
                   f"{_pct(dep['accuracy_answered'])} of them correct; {dep['uncertain']} `uncertain`, "
                   f"{dep['rejected']} refused; tumour slices answered `notumor`: "
                   f"{dep['tumours_answered_notumor']} of {dep['tumours_answered']}")
    ref = m.get("refused_test")
    ct = m.get("refused_test_ct")
    if isinstance(ref, dict) and ref.get("n"):
        out.append(f"- refused as not brain MRI: {ref['rejected']}/{ref['n']} ({_pct(ref['rate'])}) of these "
                   f"real MRI slices, through the full file path"
                   + (f" (the {ct['n']} CT slices among the test images are counted apart: {ct['rejected']} "
                      f"refused)" if isinstance(ct, dict) and ct.get("n") else ""))
    rep = m.get("report")
    names = m.get("class_names") or []
    if isinstance(rep, dict) and names:
        out += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for c in names:
            r = rep.get(c)
            if isinstance(r, dict):
                out.append(f"| {c} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1-score']:.3f} | "
                           f"{r['support']} |")
    out.append("")
    return out


def _guidance_lines(meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The tumour gate and mask guidance, as the checkpoint records them (nothing when it has no gate)."""
    if not (config.get("model") or {}).get("gate"):
        return []
    g = meta.get("mask_guidance") or {}
    if (config.get("model") or {}).get("fine_gate"):
        line = ("- tumour gate: the last feature map is multiplied by a learned tumour map before the LSTM; the map "
                "is computed at half the input resolution by a small top-down decoder over the last three conv "
                "blocks and pooled back to the last map's grid (log-sum-exp)")
    else:
        line = ("- tumour gate: the last feature map is multiplied by a learned tumour map (sigmoid of a 1x1 "
                "convolution) before the LSTM")
    if g.get("used"):
        line += (f"; that map was trained against tumour masks, loss weight {g.get('seg_weight')} (source: "
                 f"{g.get('source')}, masks for {g.get('tumour_masks')} tumour images of the dataset, of which "
                 f"those in the training part were used; no-tumour slices count as empty masks)")
    elif g:
        line += f"; trained without masks ({g.get('reason')})"
    return [line]


def model_card(meta: dict[str, Any], classes: list[str], config: dict[str, Any], path: str, sha256: str) -> str:
    """Markdown model card from a checkpoint's metadata. Only numbers present in the metadata are shown."""
    # the shares of images trained with grey-level curves, skull-stripped and T2-rendered (absent: a run from before
    # the setting)
    augmented = config.get("augment", True)
    contrast = config.get("contrast", STORED_BEFORE["contrast"]) if augmented else 0.0
    strip = config.get("strip", STORED_BEFORE["strip"]) if augmented else 0.0
    t2 = config.get("t2", STORED_BEFORE["t2"]) if augmented else 0.0
    # the Kaggle set's sources, CT slices and sequences, and the figures measured on it, describe a model trained
    # on that set; a lab's model trained on its own images gets the general form of each warning
    kaggle = (meta.get("data") or {}).get("name") == KAGGLE_DIR
    L: list[str] = ["# Model card: tumorlens brain-tumour MRI slice classifier", "",
                    f"> **{DISCLAIMER}**", ""]
    L += ["## Model", "",
          f"- file: `{Path(path).name}`" + (f" (sha256 `{sha256[:16]}...`)" if sha256 else ""),
          f"- architecture: CNN-LSTM (`head={config.get('model', {}).get('head', '?')}`, channels "
          f"{config.get('model', {}).get('channels')}"
          + (f", convs per block {config['model']['block_convs']}" if (config.get("model") or {}).get("block_convs")
             else "")
          + (", the later convs of a block depthwise-separable" if (config.get("model") or {}).get("separable")
             else "")
          + (f", the LSTM reading a 1x1-conv projection to {config['model']['lstm_in']} channels"
             if (config.get("model") or {}).get("lstm_in") and config["model"].get("head") == "lstm" else "")
          + f") on {config.get('preprocess', {}).get('size', '?')} px "
          f"grayscale slices, cropped to the head and intensity-normalised"
          + (", the head histogram-equalised" if (config.get("preprocess") or {}).get("equalize") else "")
          + " (settings stored in the checkpoint)",
          f"- classes: {', '.join(classes)}",
          # absent in checkpoints from before the option, which predicted from the slice alone (STORED_BEFORE)
          "- inference: " + ("the logits of the slice and of its left-right mirror are averaged (calibration, "
                             "abstention and refusal were fitted on those averages)"
                             if config.get("flip_average", STORED_BEFORE["flip_average"]) else "the slice alone"),
          *_guidance_lines(meta, config),
          "- software: " + ", ".join(f"{k} {v}" for k, v in sorted((meta.get("versions") or {}).items())), ""]
    L += ["## Intended use", "",
          "- Research and teaching: exploring how a CNN-LSTM classifies single 2-D brain MRI slices, with "
          "Grad-CAM heatmaps showing which regions drove the answer.",
          "- Input: one axial, coronal or sagittal brain MRI slice (PNG/JPEG/BMP/TIFF, DICOM MR, or a NIfTI "
          "volume cut into axial slices).", "",
          "## Out-of-scope use", "",
          "- Diagnosis, screening, triage or any clinical decision: this is not a medical device and has not "
          "been validated clinically.",
          "- Other modalities (CT, ultrasound, PET/SPECT, X-ray), other body parts, photographs or documents - "
          "these are refused (see below), but refusal is not guaranteed.",
          "- Tumour types outside the four classes, paediatric scans, post-operative scans, whole-volume or "
          "patient-level diagnosis; the model sees one slice at a time.",
          ("- Finding tumours on T2, FLAIR or other sequences with a model trained on the Kaggle set: its tumour "
           "slices are contrast-enhanced T1, and "
           + ("a T2-like rendering in training narrows but does not close that gap" if t2
              else "this model was trained without the T2-like rendering that narrows that gap")
           + " (see the known failure modes)." if kaggle else
           "- Finding tumours on sequences (T1, T2, FLAIR, contrast-enhanced or not) that the training data did "
           "not hold for each class (see the known failure modes)."), ""]
    data = meta.get("data") or {}
    split = meta.get("split") or {}
    L += ["## Data and licences", "",
          f"- training data: {data.get('name', 'not recorded')}"
          + (f", {data['n_images']} images" if data.get("n_images") else "")
          + (f" ({data['skipped']} unreadable skipped)" if data.get("skipped") else "")]
    # the Kaggle licences and the leak-free claim hold for the bundled model's data and split, not for any
    # checkpoint: a stratified run on other images got the same sentences (a helper's audit)
    if data.get("name") == KAGGLE_DIR:
        L += ["- Kaggle *Brain Tumor MRI Dataset* (M. Nickparvar, DOI 10.34740/KAGGLE/DSV/2645886): licence "
              "stated as CC0 (public domain). It combines figshare, SARTAJ and Br35H images.",
              "- figshare brain-tumour dataset (Cheng et al.): CC BY 4.0. Cite: J. Cheng et al., \"Enhanced "
              "Performance of Brain Tumor Classification via Tumor Region Augmentation and Partition\", PLoS ONE "
              "10(10): e0140525, 2015.",
              "- The Kaggle set holds no patient identifiers and many near-duplicate slices."]
    else:
        L.append("- the licence and provenance of this training data are not recorded in the checkpoint: "
                 "state them before sharing this model")
    strategy = split.get("strategy")
    if strategy == "clean":
        L.append("- split `clean`: made after a duplicate audit, so copies (and the groups given, e.g. patients) "
                 "do not straddle train and test (see the split table).")
    elif strategy:
        L.append(f"- split `{strategy}`: copies and patients may straddle train and test, so test figures of "
                 f"this model can be inflated by memory of copies" + (" (the manifest was given as a file: "
                 "see how it was made)" if strategy == "file" else "") + ".")
    L.append("")
    L += ["## Splits", ""]
    table = split.get("table")
    if split.get("strategy"):
        L.append(f"strategy: `{split['strategy']}`")
        L.append("")
    if isinstance(table, list) and table and isinstance(table[0], dict):
        order = ["class", "train", "val", "test", "test_fraction"]
        cols = [c for c in order if c in table[0]] + [c for c in table[0] if c not in order]
        L += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        L += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table]
    else:
        L.append("not recorded in this checkpoint")
    L.append("")
    L += ["## Performance", ""]
    shown = False
    for key, title in (("test_metrics", "Test set"), ("metrics", "Evaluation")):
        m = meta.get(key)
        if isinstance(m, dict) and m:
            L += _metrics_section(m, title)
            shown = True
    if "val_accuracy" in meta:
        L.append(f"- validation accuracy at the best epoch ({meta.get('best_epoch', '?')}): "
                 f"{_pct(meta['val_accuracy'])} (used for model selection, so optimistic)")
        L.append("")
        shown = True
    if not shown:
        L += ["No evaluation results are stored in this checkpoint.", ""]
    cal = meta.get("calibration") or {}
    L += ["## Calibration and abstention", ""]
    if cal:
        L.append(f"- temperature scaling: T = {cal.get('temperature', 1.0):.3f}, fitted on "
                 f"{cal.get('fitted_on', '?')} ({cal.get('n', '?')} images)")
    else:
        L.append("- no calibration stored (T = 1)")
    ab = meta.get("abstention") or {}
    if ab:
        L.append(f"- abstention: a record is `uncertain` when its calibrated confidence is below "
                 f"{ab.get('threshold', 0):.3f}; on validation this answered {_pct(ab.get('coverage'))} of cases "
                 f"with {_pct(ab.get('accuracy'))} accuracy (target {_pct(ab.get('target_accuracy'))}). "
                 f"Rule: {ab.get('rule', 'n/a')}.")
    else:
        L.append("- no abstention threshold stored: every accepted input gets an answer")
    L.append("")
    ref = meta.get("refusal") or {}
    L += ["## Refusal of inputs that are not brain MRI", "",
          "Before the model answers, an input is `rejected` (no class, no probabilities, a reason) when:",
          "- its DICOM Modality is not MR (CT, US, NM, PT, CR, DX, MG, XA ...), its ImageType marks a localizer or a "
          "parametric map (ADC, FA, CBF ...), or "
          "BodyPartExamined is not the head "
          "(without that tag: a study, series or protocol description names another body part and not the head), "
          "or its values are in Hounsfield units (CT: a share of them at the -1000 HU of air, e.g. a CT NIfTI "
          "volume);",
          "- its image statistics are unlike an MRI slice: blank/constant, colour, under 32 pixels a side, pixel "
          "noise or speckle, flat/binary graphics or text, too blurry, no dark background, or no single roughly "
          "elliptical head region (e.g. lungs);"]
    if ref.get("ood"):
        pooled = ref.get("ood_threshold_on") == "train+val"
        from .refusal import FEATURES_ALL_BLOCKS

        feats = ("the average of every conv block's output" if ref["ood"].get("features") == FEATURES_ALL_BLOCKS
                 else "the pooled last feature map")
        L.append(f"- its features are far from the training slices: Mahalanobis distance on {feats} above the "
                 f"{100 * ref.get('ood_quantile', 0.995):.1f}th percentile of the "
                 + ("training and validation slices' scores together" if pooled else "validation scores")
                 + f" (refuses {_pct(ref.get('ood_val_refusal_rate'))} of validation slices"
                 + (f" and {_pct(ref.get('ood_train_refusal_rate'))} of training slices" if pooled else "")
                 + ")."
                 + (" Both tumorlens's default percentile (99.5 at first; 99.8 from the first gated model, which refused 1.1% of "
                    "its clean test slices at 99.5; 99.5 again since the first skull-strip-trained model let an "
                    "abdominal MR slice through at 99.8; 99.8 again since the first model trained with T2-like "
                    "renderings refused a fifth of its test slices turned sideways at 99.5) and the scores it is "
                    "taken from (validation alone until the fine-gated model refused 2.2% of its clean test "
                    "slices; validation is a single patient fold) were chosen on the project's own models, with "
                    "their test or probe figures in view."
                    if pooled or ref.get("ood_quantile", 0.995) != 0.995 else ""))
        ex = ref.get("excluded") or {}
        if ex:
            L.append(f"- the feature distance was fitted without the {ex.get('what', 'slices')} listed in "
                     f"`{ex.get('list', '?')}` when this model was built ({ex.get('train', '?')} training and "
                     f"{ex.get('val', '?')} validation slices), so that it describes brain MRI only; slices listed "
                     f"since were in the fit as MRI.")
    else:
        L.append("- (no feature-space refusal is stored in this checkpoint)")
    look = ref.get("lookalike")
    if look:
        neg = look.get("negatives") or {}
        photos = [n for n, sha in (neg.get("sources") or {}).items() if sha != "generated"]
        L.append(f"- its features are closer to photographs and textures than to MRI slices: a logistic regression on "
                 f"the same features (the look-alike detector), fitted on the training slices, their sideways and "
                 f"upside-down turns and copies through the training augmentation against {neg.get('n', '?')} "
                 f"variants (cut to ellipses or circles on black, vignetted, turned, inverted) of {len(photos)} "
                 f"photographs bundled with scikit-image and matplotlib "
                 f"and of generated textures; threshold at the {100 * look.get('quantile', 0.998):.1f}th percentile "
                 f"of the training and validation slices' scores (refuses {_pct(look.get('val_refusal_rate'))} of "
                 f"validation and {_pct(look.get('train_refusal_rate'))} of training slices, "
                 f"{_pct(look.get('negatives_refused'))} of its own negatives). Its strength, threshold and variants "
                 f"were chosen on validation slices and with the project's probe sets in view; it refuses more real "
                 f"slices that look least like the training slices (skull-stripped, re-curved; "
                 f"benchmarks/robustness.md).")
    L += ["", "## Known failure modes", "",
          "- Single slices only: a tumour outside the slice shown cannot be seen; slices far from the tumour "
          "are called `notumor`.",
          ("- The Kaggle classes come from different sources (the no-tumour images from Br35H), so a model can "
           "partly learn the source instead of the anatomy; cropping to the head reduces but does not remove this."
           if kaggle else
           "- Where the classes of the training data come from different sources, scanners or sequences, a model "
           "can partly learn the source instead of the anatomy; cropping to the head reduces but does not remove "
           "this. Test on images whose source does not predict their class (`python benchmarks/shortcut.py` "
           "shows how it is done for the Kaggle set)."),
          "- Images unlike the training data (other scanners, sequences, resolutions, paediatric or "
          "post-operative anatomy) may be answered confidently and wrongly; refusal catches only some of them.",
          "- A grayscale photograph or an MRI-like image can pass the statistical checks; the feature-space "
          "checks are the last line of defence, and they miss some: a photograph or texture cut to an ellipse on "
          "black looks like a head to every shape statistic, and one unlike the look-alike detector's negatives "
          "can be answered (a grey flower cut to a circle; photographs or textures in a head-shaped mask with a "
          "bright rim like a skull and dark shapes like ventricles).",
          ("- The Kaggle set holds CT slices (bright skull, grey brain), mostly in its no-tumour folders, and a "
           "model trained on it learns them under those labels. " if kaggle else
           "- CT slices in the training data (the Kaggle set, for one, holds some in its no-tumour folders) are "
           "learnt under their folders' labels. ") + (
              "Its feature distance was fitted without them, so it refuses most CT slices given as image files, "
              "but one that passes gets a class (usually `notumor`)" if (ref.get("excluded") or {}) else
              "A CT slice given as an image file may get a class (usually `notumor`) instead of being refused")
          + " (a CT DICOM is refused by its Modality tag). "
          "`python benchmarks/ct_in_kaggle.py` lists them and what a model does with each.",
          "- Scans shown through another grey-level curve (a narrow window, histogram equalisation, an "
          "S-shaped display curve) lose tumours more often than scans as acquired. " + (
              f"This model was trained with such curves on {100 * contrast:.0f}% of its images, which reduces "
              "but does not remove this" if contrast else
              "This model was trained without such curves, and may call many of those tumours "
              "`notumor`") + "; measure a model with `python benchmarks/robustness.py --model CKPT --out FILE`.",
          "- Skull-stripped slices (as in BraTS and other public tumour data; every Kaggle slice keeps its skull) "
          "lose tumours more often than slices with the skull. " + (
              f"This model was trained with {100 * strip:.0f}% of its images skull-stripped, which reduces "
              "but does not remove this" if strip else
              "This model was trained without skull-stripped images") +
          "; measure a model with `python benchmarks/robustness.py --model CKPT --out FILE`.",
          ("- Tumours on T2-weighted slices: the Kaggle tumour classes are contrast-enhanced T1 slices and its "
           "no-tumour class is mostly T2 and FLAIR, so a T2 tumour slice can be called `notumor`. With the set's 13 "
           "T2 tumour slices held out of training, a model trained without a T2-like rendering of the tumour called "
           "11 of them `notumor`, one trained with it on 30% of its images 2 (`benchmarks/sequences.md`). "
           if kaggle else
           "- Tumours on a sequence that the training data holds for other classes only: where the tumour classes "
           "are mostly one sequence and the no-tumour class another, a tumour on the other sequence can be called "
           "`notumor` (on the Kaggle set, whose tumour classes are contrast-enhanced T1, a model trained without a "
           "T2-like rendering of the tumour called 11 of 13 held-out T2 tumour slices `notumor`, one trained with "
           "it on 30% of its images 2: `benchmarks/sequences.md`). ") + (
              f"This model was trained with it on {100 * t2:.0f}% of its images; 13 slices of one source are "
              "a small test, so treat a `notumor` answer on a T2 slice with caution. The rendering had a cost on "
              "the Kaggle set: "
              "tumours shown through an S-shaped display curve or histogram-equalised are missed more often "
              "than by the model before it" if t2 else
              "This model was trained without it (the model trained with it scored lower on the Kaggle set and "
              "refused many more turned or re-windowed real slices: docs/experiments.md), and may "
              "call most T2 tumour slices `notumor`")
          + "; measure a model with `python benchmarks/sequences.py score --model CKPT --out FILE`.",
          "- Noisy slices (strong pixel noise at full resolution) can be refused as 'mostly pixel noise', and "
          "slices turned sideways are answered less accurately and more often `uncertain` or refused; measure a "
          "model with `python benchmarks/robustness.py --model CKPT --out FILE`.",
          "- Real MRI slices far from the training slices (another sequence, a strong display curve, skull "
          "stripping) are refused by the feature checks more often, tumour slices among them: a refused tumour "
          "slice is neither found nor missed. `python benchmarks/robustness.py --model CKPT --out FILE` gives the share of tumour slices "
          "refused under each change.",
          "- Healthy brains from other sources: an average-brain template (nilearn's MNI152 T1, skull-stripped and "
          "smoother than any scan) is mostly refused as unlike the training slices, and its axial slices at the "
          "skull base (temporal poles, midbrain) can be called `pituitary` with high confidence; diffusion and fMRI "
          "(EPI) slices from dipy and nibabel were mostly called `notumor`. Measure a model with "
          "`python benchmarks/external_mri.py --model CKPT --out FILE` (healthy brains only: it measures false "
          "alarms and refusals, not tumour detection).",
          "- Heatmaps show what influenced the score, not a diagnosis-grade segmentation: on held-out slices "
          "with expert masks their peak misses the tumour in a share of cases (most often diffuse or "
          "non-enhancing gliomas, where the map can peak on another bright structure); measure a model with "
          "`tumorlens localize`.", "", f"**{DISCLAIMER}**", ""]
    return "\n".join(L)


KAGGLE_DIR = "brain-tumor-mri-dataset"  # the Kaggle set's folder name, as recorded in a checkpoint's data.name


def cmd_model_card(a: argparse.Namespace) -> int:
    from .checkpoint import BUNDLED, file_sha256, load_checkpoint, read_metadata

    from .fileio import atomic_write_text, file_target

    path = Path(a.model) if a.model else BUNDLED
    out = Path(file_target(a.out, "--out", inputs=(path,)))
    if not path.exists():
        raise TumorlensError(f"{path}: checkpoint not found")
    load_checkpoint(path)  # the header checks a Predictor's load makes, with their one-line errors
    doc = read_metadata(path)
    meta = {k: v for k, v in doc.items() if k not in ("config", "classes")}
    try:
        text = model_card(meta, list(doc.get("classes", [])), doc.get("config", {}), str(path), file_sha256(path))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # as `info` says it (a traceback)
        raise TumorlensError(f"{path}: checkpoint metadata is damaged or hand-edited "
                             f"({type(e).__name__}: {e})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    print(f"wrote {out}  ({DISCLAIMER})")
    return 0


# ------------------------------------------------------------------------------------------ parsers
def add_parsers(sub: Any) -> None:
    """Add `predict` and `model-card` to the `tumorlens` sub-command parser."""
    s = sub.add_parser("predict", help="classify MRI slices (images, DICOM, NIfTI); research use only",
                       description=f"Classify brain MRI slices. {DISCLAIMER} Exit code 1 when any input "
                                   f"could not be read, else 0.")
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, folders (recursive; files named like notes, tables or code are skipped) or glob patterns")
    s.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    s.add_argument("--format", choices=["table", "json", "jsonl", "csv"], default="table")
    s.add_argument("--explain", metavar="DIR",
                   help="write a heatmap overlay (the model's default method, e.g. gated; its title names the "
                        "method) per answered slice into DIR as NAME_gradcam.png whatever the method (the suffix "
                        "kept for scripts that read it), NAME as `explain` names its files")
    s.add_argument("--slice", type=int, help="NIfTI: classify this axial slice only (0 = most inferior)")
    s.add_argument("--workers", type=int, default=None,
                   help="processes that read and preprocess files, and run the model on them with ONNX Runtime "
                        "(default: one per core for 128 or more files, else none; 0: none)")
    s.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="model runtime: ONNX Runtime for large batches when installed (auto), or one of them")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("model-card", help="write a model card (Markdown) from a checkpoint's metadata")
    s.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    s.add_argument("--out", required=True, help="output file, e.g. MODEL_CARD.md")
    s.set_defaults(func=cmd_model_card)
