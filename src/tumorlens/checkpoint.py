"""Self-describing checkpoints: one `.safetensors` file holds the weights and, in its header metadata,
a JSON document with the config, class names, preprocessing, split manifest, history and metrics.

Loading needs no other file and never unpickles code (safetensors stores raw tensors only).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from . import __version__
from .config import CLASSES, ModelConfig, Preprocess, TrainConfig, TumorlensError
from .data import file_sha256
from .fileio import atomic_write_bytes
from .model import TumorNet, build_model

META_KEY = "tumorlens"
FORMAT_VERSION = 1
BUNDLED = Path(__file__).parent / "models" / "tumorlens-cnnlstm.safetensors"


@dataclass
class Checkpoint:
    """A model and everything needed to use and audit it."""

    model: TumorNet
    config: TrainConfig
    classes: tuple[str, ...] = CLASSES
    meta: dict[str, Any] = field(default_factory=dict)  # split manifest, history, metrics, calibration ...
    path: Path | None = None
    sha256: str = ""

    @property
    def preprocess(self) -> Preprocess:
        return self.config.preprocess

    @property
    def temperature(self) -> float:
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))

    def split_rows(self, side: str | None = None) -> list[list[str]]:
        """The split manifest's rows (path, label, split, group, sha256), optionally of one side only; a
        checkpoint trained without one (e.g. by the library directly) is an error that names the file."""
        return manifest_rows(self.meta, self.path, side)


def manifest_rows(meta: dict[str, Any], path: Any, side: str | None = None) -> list[list[str]]:
    """`Checkpoint.split_rows` on metadata alone (`read_metadata`), for callers that need no weights."""
    rows = (meta.get("split") or {}).get("manifest")
    if not rows:
        raise TumorlensError(f"{path}: checkpoint has no split manifest")
    return [r for r in rows if side is None or r[2] == side]


def versions() -> dict[str, str]:
    import numpy

    return {"tumorlens": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: TrainConfig,
                    meta: dict[str, Any] | None = None, classes: tuple[str, ...] = CLASSES,
                    half: bool = False) -> Path:
    """Write weights + metadata atomically to one safetensors file.

    half: store floating-point weights as float16 (half the size; they load back into float32). The
    bundled model is stored so, and evaluated after the rounding, so its numbers are those of the file.
    """
    path = Path(path)
    if not isinstance(config, TrainConfig):
        raise TumorlensError(f"{path}: save_checkpoint needs the TrainConfig the model was built from, got "
                             f"{type(config).__name__}")
    meta = dict(meta or {})
    classes = tuple(classes)
    # the arguments are what is saved: a `meta` holding other class names or another config (say, an old
    # checkpoint's read_metadata) had silently relabelled the model or kept the old settings (a library audit)
    for key, given in (("classes", list(classes)), ("config", config.to_dict())):
        if key in meta and meta.pop(key) != given:
            raise TumorlensError(f"{path}: meta[{key!r}] differs from the {key} given; pass them as arguments only")
    check_header(path, config, classes, meta)  # nothing is written that load_checkpoint would refuse
    expected = {k: tuple(v.shape) for k, v in build_model(config.model, config.preprocess.size).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if got != expected:  # the file would save, then fail to load as "does not match this tumorlens"
        diff = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise TumorlensError(f"{path}: the model does not match its config (e.g. {diff[0]}); save it with the "
                             f"config it was built from")
    path.parent.mkdir(parents=True, exist_ok=True)
    # meta may carry the versions a model was trained with (a refit keeps them); the rest is this call's
    doc = {"versions": versions(), **meta, "format": FORMAT_VERSION, "classes": list(classes),
           "config": config.to_dict()}
    try:
        header = json.dumps(doc, sort_keys=True, default=_plain, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TumorlensError(f"{path}: checkpoint metadata holds a value JSON cannot store ({e})") from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    return atomic_write_bytes(path, save(tensors, metadata={META_KEY: header}))


def _plain(o: Any) -> Any:
    """numpy scalars and arrays in metadata as plain numbers and lists (a np.float32 had failed the save)."""
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON")


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of the weights alone (tensor names, dtypes, shapes and bytes, in name order): the same for two
    runs that trained the same weights, where the file's hash differs by the timings its metadata records."""
    import hashlib

    h = hashlib.sha256()
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own types for damaged files
        raise TumorlensError(f"{path}: cannot read the weights ({e})") from None
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON document of a checkpoint, without loading its weights.

    `tumorlens info` and `model-card` read only this, so it also checks what they would otherwise report on
    a broken file: that the file is as long as its header says (a truncated download still has a whole
    header) and that the document holds the config and class names.
    """
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {path / 'model.safetensors'}?" if (path / "model.safetensors").is_file() else ""
        raise TumorlensError(f"{path}: is a folder, not a checkpoint file{hint}")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise TumorlensError(f"{path}: empty file (0 bytes), not a checkpoint")
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 100_000_000:
                raise ValueError("bad header length")
            if size < 8 + n and f.read(1) == b"{":  # a safetensors header cut short: a truncated download
                raise TumorlensError(f"{path}: checkpoint file is damaged or truncated ({size:,} bytes; its header "
                                     f"alone needs {8 + n:,})")
            f.seek(8)
            header = json.loads(f.read(n))
        doc = json.loads(header["__metadata__"][META_KEY])
        # the tensors' data lies, in order and without gaps, after the 8 + n header bytes (safetensors format)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except TumorlensError:
        raise
    except FileNotFoundError:
        raise TumorlensError(f"{path}: checkpoint not found") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError):
        raise TumorlensError(f"{path}: not a tumorlens checkpoint (no tumorlens metadata)") from None
    want = 8 + n + max(ends, default=0)
    if size != want:
        raise TumorlensError(f"{path}: checkpoint file is damaged or truncated ({size:,} bytes; "
                             f"its header describes {want:,})")
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict) \
            or not all(isinstance(doc["config"].get(k), dict) for k in ("model", "preprocess")) \
            or not isinstance(doc.get("classes"), list) or not doc["classes"]:
        raise TumorlensError(f"{path}: checkpoint metadata lacks the model configuration or the class names")
    # info and model-card read only this: a newer format is refused here, as load_checkpoint refuses it
    if not isinstance(doc.get("format", 0), int) or doc.get("format", 0) > FORMAT_VERSION:
        raise TumorlensError(f"{path}: checkpoint format {doc.get('format')!r} is newer than this tumorlens")
    return doc


LEGACY_MODEL_DEFAULTS = {"gate": False, "seg_blocks": 0, "fine_gate": False, "block_convs": [],
                         "pool_skip": False, "lstm_in": 0, "separable": False}
LEGACY_TRAIN_DEFAULTS = {"seg_weight": 0.0}


def check_header(path: Any, config: TrainConfig, classes: tuple[str, ...], meta: dict[str, Any]) -> None:
    """What a checkpoint's header must hold for its model to answer, or one TumorlensError naming the file:
    checked on load and before saving (`save_checkpoint` had written files that `load_checkpoint` refuses)."""
    if len(classes) != config.model.num_classes:
        raise TumorlensError(f"{path}: checkpoint names {len(classes)} classes but its model has "
                             f"{config.model.num_classes} outputs")
    # a hand-edited or damaged calibration would turn every answer around (a negative temperature inverts the
    # ranking of the classes) or make it NaN: refused here, like non-finite weights
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    # the sections a Predictor reads are objects; a hand-edited header with "refusal": "x" gave tracebacks in
    # predict, serve and model-card (a helper's audit), and a duplicated class name went through silently
    for key in ("calibration", "abstention", "refusal", "split", "data", "metrics", "test_metrics"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise TumorlensError(f"{path}: checkpoint metadata is damaged ({key!r} must be an object, got "
                                 f"{type(meta[key]).__name__})")
    if len(set(classes)) != len(classes) or not all(isinstance(c, str) and c for c in classes):
        raise TumorlensError(f"{path}: checkpoint class names must be distinct non-empty names, got {list(classes)}")
    from .lookalike import Lookalike
    from .refusal import FeatureOOD

    # the refusal's fitted parts: shapes and thresholds, checked once here (a NaN threshold turned the
    # feature-distance refusal off without a word)
    for key, load in (("ood", FeatureOOD.from_meta), ("lookalike", Lookalike.from_meta)):
        part = (meta.get("refusal") or {}).get(key)
        if part is not None:
            try:
                load(part)
            except TumorlensError as e:
                raise TumorlensError(f"{path}: {e}") from None
    t = (meta.get("calibration") or {}).get("temperature", 1.0)
    if not number(t) or not 0.0 < t < float("inf"):
        raise TumorlensError(f"{path}: checkpoint calibration temperature must be a positive number, got {t!r}")
    th = (meta.get("abstention") or {}).get("threshold", 0.0)
    if not number(th) or not 0.0 <= th <= 1.0:
        raise TumorlensError(f"{path}: checkpoint abstention threshold must be a confidence in [0, 1], got {th!r}")


def load_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Load a checkpoint (default: the bundled model) in eval mode."""
    if path is not None and not os.fspath(path):
        raise TumorlensError("empty checkpoint path (give None for the bundled model)")
    path = Path(path) if path is not None else BUNDLED
    if path is None or not Path(path).exists():
        if path == BUNDLED:
            raise TumorlensError(f"{path}: the bundled model is missing from this installation")
        raise TumorlensError(f"{path}: checkpoint not found")
    doc = read_metadata(path)
    if doc.get("format", 0) > FORMAT_VERSION:
        raise TumorlensError(f"{path}: checkpoint format {doc['format']} is newer than this tumorlens")
    try:
        cfg_doc = dict(doc["config"])
        # settings added after a checkpoint was written take the value that reproduces its model, not
        # today's default (checkpoints from before mask guidance have no gate and no mask heads)
        cfg_doc["model"] = {**LEGACY_MODEL_DEFAULTS, **(cfg_doc.get("model") or {})}
        cfg_doc = {**LEGACY_TRAIN_DEFAULTS, **cfg_doc}
        config = TrainConfig.from_dict(cfg_doc)
        classes = tuple(doc["classes"])
        model = build_model(config.model, config.preprocess.size)
    except TumorlensError as e:  # a setting out of range (a hand-edited header): said with the file's name
        raise TumorlensError(f"{path}: checkpoint settings are invalid ({e})") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise TumorlensError(f"{path}: checkpoint does not match this tumorlens ({e})") from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:  # unreadable data is damage, not a version mismatch
        raise TumorlensError(f"{path}: checkpoint file is damaged or truncated ({e})") from None
    # NaN or inf weights give NaN probabilities for every input; refused here, once, rather than per answer
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise TumorlensError(f"{path}: checkpoint has non-finite weights (NaN or inf)")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        detail = " ".join(str(e).split())  # torch's size-mismatch message spans lines
        raise TumorlensError(f"{path}: checkpoint does not match this tumorlens ({detail})") from None
    if missing or unexpected:
        raise TumorlensError(f"{path}: checkpoint weights do not match the model "
                             f"(missing {len(missing)}, unexpected {len(unexpected)})")
    model.eval()
    meta = {k: v for k, v in doc.items() if k not in ("config", "classes")}
    check_header(path, config, classes, meta)
    return Checkpoint(model, config, classes, meta, path, file_sha256(path))


def model_config_of(ckpt: Checkpoint) -> ModelConfig:
    return ckpt.config.model
