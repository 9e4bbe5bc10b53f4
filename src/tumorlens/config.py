"""Settings that travel with a model: preprocessing, architecture and training recipe.

Every setting that changes what the network sees lives in `Preprocess`, which is stored inside each
checkpoint so that training, evaluation, the CLI and the web app can never preprocess differently.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")
DISCLAIMER = "Research use only - not a medical device. Not for diagnosis or treatment decisions."


class TumorlensError(Exception):
    """An error a user can act on; the CLI prints it as one line, without a traceback."""


class NoImageError(TumorlensError):
    """A DICOM object that holds no image at all (a structured report, a presentation state, a DICOMDIR): an
    error when named, but passed over (and counted) when found in a folder, as a PACS export holds such files
    beside its images."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input.

    crop: cut the head's bounding box (pixels above `fg_threshold` of the robust maximum) and pad it to a
      square before resizing. The Kaggle no-tumour images come with many crops and aspect ratios while the
      tumour slices are mostly uncropped 512-px frames; cropping to the head removes that shortcut.
    normalize: divide by the `norm_percentile` of the head's pixels, then clip to [0, 1], so re-windowed and
      differently exposed copies of a scan look alike (the reference design only asks for [0, 1]).
    equalize: then histogram-equalise the head (`data.equalize_head`: each pixel above `EQ_FG` replaced by its
      mean rank among them), so any increasing grey-level curve (another window, gamma, display curve) gives
      nearly the same input; training equalises again after its intensity augmentation (train.py).
    """

    size: int = 64
    crop: bool = True
    fg_threshold: float = 0.08
    margin: float = 0.04
    normalize: bool = True
    norm_percentile: float = 99.5
    equalize: bool = False

    def key(self) -> str:
        """A short stable hash of these settings, used to key caches (`equalize` counted only when on, so
        caches made before it existed stay valid)."""
        d = dataclasses.asdict(self)
        if not d["equalize"]:
            del d["equalize"]
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


@dataclass(frozen=True)
class ModelConfig:
    """CNN-LSTM architecture. `head='lstm'` is the reference design; `head='pool'` is the ablation."""

    channels: tuple[int, ...] = (16, 32, 64, 128)  # 2.2x faster per step than (32, 64, 128, 128) here
    head: str = "lstm"
    lstm_hidden: int = 128
    bidirectional: bool = True
    dense: int = 128
    dropout: float = 0.3
    num_classes: int = 4
    # 1x1-conv tumour-mask heads on the last `seg_blocks` conv blocks, trained with `TrainConfig.seg_weight`
    # (0: none). They shape the features that Grad-CAM reads; predictions never use them.
    seg_blocks: int = 0
    # multiply the last feature map by a learned tumour map, sigmoid(1x1 conv), before the LSTM; trained
    # against tumour masks with `TrainConfig.seg_weight` (model.py, TumourGate)
    gate: bool = True
    # (with the gate) compute the gate's tumour map at 4x the last map's resolution with a small top-down
    # decoder over the last three blocks (model.py, FineGate), then pool it back to gate the last map
    fine_gate: bool = True
    # conv3x3 layers per block, one entry per entry of `channels` (empty: one each); a second conv in the last
    # two blocks raised clean test accuracy 0.931 -> 0.938 and the `gated` pointing game 0.814 -> 0.828
    # (seed 0, 1 thread; the README's gate table)
    block_convs: tuple[int, ...] = (1, 1, 2, 2)
    # (head 'lstm') also feed the last map's global average to the dense layers, beside the LSTM's output;
    # an experiment after the CNN-only ablation overtook the LSTM on the fine-gated features
    pool_skip: bool = False
    # (head 'lstm') project the gated last map to this many channels with a 1x1 conv before it is read row by
    # row (0: no projection, the LSTM reads all C x W values of a row). The LSTM's input weights are 1.05 M of
    # the model's 1.52 M parameters and a fifth of its ONNX Runtime time. At 32 (0.73 M parameters, the model
    # 0.82 against 0.97 ms per input): clean accuracy 0.943 / 0.936 / 0.946 on seeds 0 / 1 / 2, mean 0.942
    # (0.938 without), but official 0.958 (0.965), stratified 0.961 (0.972), and the seed-0 model's ECE 0.021
    # (0.019, over the 0.02 target) and tumour miss rate 1.3% (0.6%), so it stays off (docs/experiments.md;
    # benchmarks/results-lstm-in32.md)
    lstm_in: int = 0
    # conv3x3 layers after the first in a block (block_convs > 1) as depthwise-separable convs (a 3x3 per channel,
    # then a 1x1 across channels; MobileNet, Howard et al. 2017): the two second convs were 30% of the model's ONNX
    # Runtime time (its profiler, bundled model, 1 thread), a separable one has 1/8 of their multiply-adds. Faster
    # (0.70 against 0.98 ms per input) and as accurate on the clean split (mean 0.929 against 0.928), but its
    # feature distance refused 52 of the Kaggle set's 74 CT slices against 66, so it stays off (docs/experiments.md;
    # benchmarks/results-separable.md)
    separable: bool = False

    def __post_init__(self) -> None:
        if self.block_convs and (len(self.block_convs) != len(self.channels)
                                 or any(int(k) < 1 for k in self.block_convs)):
            raise TumorlensError(f"model.block_convs needs one count >= 1 per entry of model.channels "
                                 f"({len(self.channels)}), got {list(self.block_convs)}; [] means one conv each")
        if self.head not in ("lstm", "pool"):
            raise TumorlensError(f"model.head must be lstm or pool, got {self.head!r}")
        if self.lstm_in < 0:
            raise TumorlensError(f"model.lstm_in must be 0 (no projection) or a channel count, got {self.lstm_in}")
        if not self.channels or min(self.channels) < 1 or self.lstm_hidden < 1 or self.dense < 1:
            raise TumorlensError("model.channels, model.lstm_hidden and model.dense need sizes >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise TumorlensError(f"model.dropout must be in [0, 1), got {self.dropout}")
        # sizes far beyond any CPU budget (a typo such as lstm_hidden=1000000) would end in an allocator error
        # deep in torch; model.num_classes is the number of classes, which the data fixes, not a setting
        for name, v, top in (("channels", max(self.channels), 1024), ("lstm_hidden", self.lstm_hidden, 4096),
                             ("dense", self.dense, 8192), ("lstm_in", self.lstm_in, 1024)):
            if v > top:
                raise TumorlensError(f"model.{name} must be at most {top}, got {v}")
        if len(self.channels) > 6:
            raise TumorlensError(f"model.channels may list at most 6 conv blocks, got {len(self.channels)}")
        if self.num_classes != len(CLASSES):
            raise TumorlensError(f"model.num_classes is the number of classes ({len(CLASSES)}: "
                                 f"{', '.join(CLASSES)}) and cannot be changed, got {self.num_classes}")
        if self.gate and self.fine_gate and len(self.channels) < 3:
            raise TumorlensError("model.fine_gate needs at least 3 conv blocks (or model.fine_gate=false)")


# settings whose default is not what a run written before the setting existed did: turn was fixed at 0.1,
# prediction used the slice alone, and no grey-level curves, skull stripping or T2-like renderings were drawn
# (`sequence` is off by default too; it is listed so that older runs stay right if that default changes)
STORED_BEFORE: dict[str, Any] = {"turn": 0.1, "flip_average": False, "contrast": 0.0, "sequence": 0.0,
                                 "strip": 0.0, "t2": 0.0}
def flat_settings(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings (as in `TrainConfig.to_dict`) -> {"model.lstm_hidden": 128, ...}, the keys `--set` takes."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat_settings(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


# settings used only after training: runs that differ only in these have the same weights
INFERENCE_ONLY = ("flip_average",)


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; `tumorlens train --set key=value` overrides any field (model fields as model.X)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    # epochs without a val-accuracy gain before stopping. 10 stopped one of eight benchmark runs at epoch 25
    # (clean seed 1: best val 0.932 at epoch 15) whose full cosine schedule reached val 0.945 at epoch 30;
    # the longest stall in the other seven runs was 11 epochs (runs/bench/*/run/history.csv)
    patience: int = 15
    seed: int = 0
    threads: int = 0  # 0: torch's default
    augment: bool = True
    # share of training images turned by any angle (augment.py); the rest turn by at most 10 degrees.
    # 0.25 rather than 0.1: on the 3 clean seeds, slices turned 90/270 degrees scored 0.909/0.901 against
    # 0.886/0.883 (benchmarks/robustness.py on each run), upright accuracy unchanged (docs/experiments.md)
    turn: float = 0.25
    seg_weight: float = 10.0  # weight of the mask-guidance loss (masks.py); needs model.seg_blocks > 0 or model.gate
    # per-step decay of an exponential moving average of the weights (and BatchNorm statistics) that is
    # validated and kept instead of the raw weights; 0: off (train.py)
    ema: float = 0.0
    # mixup (Zhang et al. 2018): blend each batch with a shuffled copy of itself, weight ~ Beta(a, a), and
    # the labels and tumour masks by the same weight; this is a, 0: off (train.py)
    mixup: float = 0.0
    # share of training images given another monotone grey-level mapping: a narrow window, histogram
    # equalisation or a random curve (augment.py); 0: off. Without it, tumour slices re-windowed above their
    # head's 80th percentile were called "no tumour" 26% of the time, histogram-equalised ones 29% (README,
    # "grey-level curves")
    contrast: float = 0.3
    # share of training images given a T2-like, N-shaped grey-level curve of the head (augment.py); 0: off.
    # The tumour classes are contrast-enhanced T1 slices and the no-tumour class mostly T2 and FLAIR; at 0.2
    # and 0.4 it did not stop held-out T2 tumour slices being called "no tumour" (7 and 9 of 13, against 9
    # without) and cost accuracy, so it stays off (README, "other sequences")
    sequence: float = 0.0
    # share of training images given a T2-like look from their tumour mask: the N-shaped curve above, the
    # tumour re-filled mid to bright and a bright oedema ring around it (augment.py, _t2_render); 0: off.
    # With the 13 T2 tumour slices held out (benchmarks/sequences.py, seed 0, 2 threads) a model called 11 of
    # them "no tumour" without it, 7 at 0.1 and 2 at 0.3; with grey levels inverted inside the head its seed-0
    # model missed 5.3% of test tumours against 58.4%. The costs: clean accuracy 0.928 against 0.938 (mean of 3
    # seeds), official 0.944 against 0.965 (benchmarks/results.md; without it: `--set t2=0`, or results.md as of
    # commit 9c0ca0b), and 8% of tumours missed under an S-shaped curve or histogram equalisation against 3%.
    # Its feature distance refuses more real slices shown differently at the 99.5th percentile, hence 99.8
    # (refusal.OOD_QUANTILE). README, "other sequences".
    t2: float = 0.3
    # share of training images skull-stripped: the head's outer 2-7 px (of 64) set to background and the rest
    # zoomed to fill the frame (augment.py); 0: off. Public tumour data such as BraTS is skull-stripped,
    # while every Kaggle slice keeps its skull. At 0.5 the three clean seeds scored 0.938 mean accuracy
    # against 0.933 without, and missed 0.7-2.0% of skull-stripped test tumours against 10.8-14.1%; the
    # leaky official split fell from 0.974 to 0.965 (benchmarks/results.md; docs/experiments.md, "skull stripping")
    strip: float = 0.5
    # weight of outlier exposure (outliers.py): each batch also carries a quarter as many generated non-MRI
    # images, trained towards a uniform answer (Hendrycks et al. 2019 use 0.5); 0: off
    outliers: float = 0.0
    # at inference (Predictor, and so evaluate, predict and serve alike) average the logits of each slice and
    # its left-right mirror; the temperature is fitted on those averaged logits. A head is near-symmetric, so
    # the mirror is a second look at the same anatomy. It raised clean test accuracy on all six benchmark runs
    # of turn 0.1 and 0.25 (+0.4 to +0.9 points) and official accuracy by 0.2-0.3 points, for twice the
    # model time (docs/experiments.md, "test-time mirroring")
    flip_average: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: Preprocess = field(default_factory=Preprocess)

    def __post_init__(self) -> None:
        # a JSON value may be Infinity or NaN: every number must be finite first (warmup_epochs=Infinity would
        # crash mid-setup, seg_weight=Infinity would train on an infinite loss)
        for prefix, obj in (("", self), ("model.", self.model), ("preprocess.", self.preprocess)):
            for f in fields(obj):
                v = getattr(obj, f.name)
                if isinstance(v, float) and not math.isfinite(v):
                    raise TumorlensError(f"{prefix}{f.name} must be a finite number, got {v}")
        # lr above 1 makes AdamW's steps larger than the weights themselves: the loss goes to nan within a batch
        for name, ok, need in (("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 2, ">= 2"),
                               ("lr", 0 < self.lr <= 1, "in (0, 1]"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
                               ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
                               ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                               ("patience", self.patience >= 1, ">= 1"), ("threads", self.threads >= 0, ">= 0"),
                               # torch segfaulted at set_num_threads(100000) and crawled at 5000 (an audit)
                               ("threads", self.threads <= 256, "<= 256"),
                               # AdamW shrinks each weight by lr x weight_decay a step: at 1 or more it flips the
                               # weights' sign and they blow up (weight_decay=1e5 saved a model of inf, exit 0)
                               ("weight_decay", self.lr * self.weight_decay < 1,
                                f"below 1 / lr = {1 / self.lr:g}" if self.lr > 0 else "below 1 / lr"),
                               ("seed", 0 <= self.seed < 2 ** 32, "in [0, 2^32)"),
                               ("batch_size", self.batch_size <= 4096, "<= 4096"),
                               ("epochs", self.epochs <= 10000, "<= 10000"),
                               ("seg_weight", self.seg_weight >= 0, ">= 0")):
            if not ok:
                raise TumorlensError(f"{name} must be {need}, got {getattr(self, name)}")
        step = 2 ** (len(self.model.channels) - 1)  # each block but the last halves the map (model.py)
        if self.preprocess.size < 2 * step or self.preprocess.size % step:
            raise TumorlensError(f"preprocess.size must be a multiple of {step} and at least {2 * step} for "
                                 f"{len(self.model.channels)} conv blocks, got {self.preprocess.size}")
        if not 0.0 <= self.ema < 1.0:
            raise TumorlensError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0.0 <= self.turn <= 1.0:
            raise TumorlensError(f"turn must be a share in [0, 1], got {self.turn}")
        if not 0.0 <= self.contrast <= 1.0:
            raise TumorlensError(f"contrast must be in [0, 1], got {self.contrast}")
        if not 0.0 <= self.sequence <= 1.0:
            raise TumorlensError(f"sequence must be in [0, 1], got {self.sequence}")
        if not 0.0 <= self.t2 <= 1.0:
            raise TumorlensError(f"t2 must be in [0, 1], got {self.t2}")
        if not 0.0 <= self.strip <= 1.0:
            raise TumorlensError(f"strip must be in [0, 1], got {self.strip}")
        if not 0.0 <= self.outliers <= 10.0:
            raise TumorlensError(f"outliers must be in [0, 10] (the outlier-exposure loss weight; 0: off), "
                                 f"got {self.outliers}")
        if not 0.0 <= self.mixup <= 10.0:
            raise TumorlensError(f"mixup must be in [0, 10] (the Beta distribution's a; 0: off), got {self.mixup}")
        if not 0 <= self.model.seg_blocks <= len(self.model.channels):
            raise TumorlensError(f"model.seg_blocks must be from 0 to the number of conv blocks "
                                 f"({len(self.model.channels)}), got {self.model.seg_blocks}")
        pre = self.preprocess
        if not 0.0 <= pre.fg_threshold < 1.0:
            raise TumorlensError(f"preprocess.fg_threshold must be in [0, 1), got {pre.fg_threshold}")
        if not 0.0 <= pre.margin <= 1.0:
            raise TumorlensError(f"preprocess.margin must be in [0, 1], got {pre.margin}")
        if pre.size > 512:
            raise TumorlensError(f"preprocess.size must be at most 512, got {pre.size}")
        if not 0.0 < pre.norm_percentile <= 100.0:
            raise TumorlensError(f"preprocess.norm_percentile must be in (0, 100], got {pre.norm_percentile}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A stored config (a checkpoint's, a run's config.json). A setting added after the config was written
        takes the value that reproduces how that run behaved (`STORED_BEFORE`), not today's default."""
        d = dict(d)
        for k, v in STORED_BEFORE.items():
            d.setdefault(k, v)
        model = d.pop("model", {}) or {}
        pre = d.pop("preprocess", {}) or {}
        for k in ("channels", "block_convs"):
            if k in model:
                model[k] = tuple(model[k])
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise TumorlensError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        mknown = {f.name for f in fields(ModelConfig)}
        if set(model) - mknown:
            raise TumorlensError(f"unknown model setting(s): {', '.join(sorted(set(model) - mknown))}")
        return cls(model=ModelConfig(**model), preprocess=Preprocess.from_dict(pre), **d)

    def with_inference_of(self, other: "TrainConfig") -> "TrainConfig":
        """This recipe with `other`'s INFERENCE_ONLY settings: equal to `other` exactly when both train alike."""
        return dataclasses.replace(self, **{k: getattr(other, k) for k in INFERENCE_ONLY})

    @classmethod
    def from_file_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A user's config file (any subset of the settings, nested as in `to_dict`) on top of the defaults,
        checked setting by setting like `--set`."""
        if not isinstance(d, dict):
            raise TumorlensError("expects a JSON object of settings, e.g. {\"epochs\": 20}")
        return cls().with_overrides([f"{k}={json.dumps(v)}" for k, v in flat_settings(d).items()])

    def with_overrides(self, pairs: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (`model.lstm_hidden=64`, `preprocess.size=96`); values parse as JSON."""
        d = self.to_dict()
        for pair in pairs:
            if "=" not in pair:
                raise TumorlensError(f"--set expects key=value, got {pair!r}")
            key, raw = pair.split("=", 1)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            target = d
            parts = key.strip().split(".")
            for p in parts[:-1]:
                if p not in target or not isinstance(target[p], dict):
                    raise TumorlensError(_unknown(key, d))
                target = target[p]
            if parts[-1] not in target:
                raise TumorlensError(_unknown(key, d))
            target[parts[-1]] = _typed(key.strip(), raw, target[parts[-1]], value)
        return TrainConfig.from_dict(d)


def _unknown(key: str, settings: dict[str, Any]) -> str:
    """'unknown setting' with the closest names, or all of them: a typo should not need the source to fix."""
    import difflib

    names = sorted(flat_settings(settings))
    close = difflib.get_close_matches(key.strip(), names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"settings: {', '.join(names)}"
    return f"unknown setting {key!r}; {hint}"


def _typed(key: str, raw: str, old: Any, value: Any) -> Any:
    """`value` checked against the type of the setting's current value (`old`), so `epochs=abc` is an error
    here rather than a crash mid-training; an integer is accepted where a float is expected."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(old, dict):
        raise TumorlensError(f"{key}={raw}: {key} is a group of settings; set one of them, e.g. "
                             f"{key}.{next(iter(old), 'x')}=...")
    if isinstance(old, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif is_int(old):
        ok, kind = is_int(value), "a whole number"
    elif isinstance(old, float):
        ok, kind = is_int(value) or isinstance(value, float), "a number"
        value = float(value) if ok else value
    elif isinstance(old, str):
        ok, kind = isinstance(value, str), "a word"
    elif isinstance(old, (list, tuple)):
        ok, kind = isinstance(value, list) and all(is_int(v) for v in value), "a list of whole numbers, e.g. [16,32]"
    else:
        ok, kind = True, ""
    if not ok:
        raise TumorlensError(f"{key}={raw}: expects {kind}")
    return value
