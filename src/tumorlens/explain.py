"""Class-activation heatmaps (Grad-CAM and finer relatives) for `TumorNet`, and their overlays.

Design: hand-written hooks, not a library. Grad-CAM on this model is ~40 lines: one forward hook per
layer keeps the activation tensor, and `torch.autograd.grad(score, activations)` returns the gradients
-- through the LSTM, whose (B, C, H, W) -> (B, H, C*W) reshape is an ordinary differentiable op, so no
special handling is needed. Per issue #4, captum and torchcam install cleanly beside our torch and gave
maps identical to hand-written hooks (not re-checked here), but they would add a dependency (and its
release cadence) for no gain; pytorch-grad-cam needs torchvision, which this project does not ship;
MONAI's GradCAM inverts maps by default and leaves its hooks registered. Hand-written hooks also let us
guarantee what the libraries do not:
  * every hook is removed, and every flag restored, also when the explanation raises: the module hook
    dicts have the same entries before and after, `model.training` (per module) and
    `torch.is_grad_enabled()` are restored, and so are the cuDNN / oneDNN flags;
  * `autograd.grad` (not `.backward()`) is used, so the parameters' `.grad` are never touched and
    explaining during training changes nothing;
  * the hooks only record in the thread that registered them, so a web server may classify with the
    same model in other threads while one request is being explained;
  * on CUDA, cuDNN refuses the LSTM's backward pass in eval mode; cuDNN is switched off inside the
    explainer (`torch.backends.cudnn.flags(enabled=False)`, the other cuDNN flags untouched) instead
    of putting BatchNorm/dropout into training mode, which would change the very prediction explained;
  * on CPU, oneDNN is switched off the same way around the LSTM only: its LSTM with autograd is 6x
    slower than ATen's, while its convolutions are the fast ones.

Methods (all maps are ReLU'd, upsampled bilinearly to the S x S network input, then divided by their
maximum, so they lie in [0, 1] and an all-zero map stays zero):
  gradcam     Selvaraju et al. 2017: ReLU(sum_c alpha_c A_c), alpha_c = spatial mean of dScore/dA_c, on the
              CAM layer (the last conv block's ReLU, S/8 x S/8 for the default four blocks).
  hirescam    Draelos & Carin 2020: ReLU(sum_c G_c * A_c) elementwise on the CAM layer; faithful to what
              the (position-dependent) LSTM head actually used, where Grad-CAM averages it away.
  layercam    Jiang et al. 2021: ReLU(sum_c ReLU(G_c) * A_c) on the block before the CAM layer (S/4 x S/4).
  multilayer  the normalised mean of LayerCAM on the last three blocks (S/8, S/4, S/2): coarse evidence
              sharpened by finer layers. On the bundled model it fails the randomisation check of `tumorlens
              localize` (rank correlation 0.66 between its maps from trained and randomised weights, the
              limit 0.5; benchmarks/localization-bundled.json): its maps follow the image more than the model.
  fused       Grad-CAM on the CAM layer times LayerCAM on the first block (full S x S resolution), pixel by
              pixel: where the class evidence is, at the detail of the input. The same idea as Guided
              Grad-CAM (Selvaraju et al. 2017, Grad-CAM x guided backpropagation), with LayerCAM's
              gradient-weighted activations in place of guided backpropagation's modified ReLU gradients.
              Where the two maps share no positive pixel, their normalised mean is shown instead.
  gated       the model's own tumour map (the gate that multiplies the last feature map before the LSTM,
              S/2 x S/2 with the fine gate) times LayerCAM on the first block, pixel by pixel: where the
              classifier was allowed to look, weighted by where the class gradient meets strong first-layer
              activations. Needs a model with a gate (`default_method` falls back to FALLBACK_METHOD without).
The default, `DEFAULT_METHOD`, is 'gated', chosen with `tumorlens localize` on the bundled model (the
fine-gated CNN-LSTM; 570 slices of its held-out figshare fold 1, benchmarks/localization-bundled.json):
pointing game gated 0.814 (95% CI 0.780-0.844; glioma 0.633, meningioma 0.972, pituitary 0.969),
multilayer 0.647, hirescam 0.625, fused 0.547, layercam 0.388, gradcam 0.379 (random map 0.035, centred
prior 0.258); energy in mask gated 0.466 = 30x the mean mask fraction 0.016; maps of the randomised model differ
(rank correlation 0.30). The model before it, trained without T2-like renderings, scored gated 0.800 and
gradcam 0.702; the one before that, trained without skull-stripped images, gated 0.821.
On the earlier model with an 8x8 gate, fused led (0.588) and gated scored 0.579:
a model without a gate falls back to fused (FALLBACK_METHOD).

Research use only - not a medical device.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DISCLAIMER, TumorlensError
from .data import resize

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("gradcam", "hirescam", "layercam", "multilayer", "fused", "gated")
DEFAULT_METHOD = "gated"
FALLBACK_METHOD = "fused"  # for a model that cannot use DEFAULT_METHOD (e.g. 'gated' needs a tumour gate)


def supports(model: nn.Module, method: str) -> bool:
    """Whether `model` can be explained with `method` (e.g. 'gated' needs a tumour gate)."""
    try:
        method_layers(model, method)
    except TumorlensError:
        return False
    return True


def default_method(model: nn.Module) -> str:
    """The method used when none is asked for: DEFAULT_METHOD where `model` supports it, else FALLBACK_METHOD."""
    return DEFAULT_METHOD if supports(model, DEFAULT_METHOD) else FALLBACK_METHOD


# ------------------------------------------------------------------------------------------- layers
def block_layers(model: nn.Module) -> list[str]:
    """Names of the ReLU output of every conv block, first to last (the last one is the CAM layer)."""
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Sequential):
        names = []
        for i, blk in enumerate(feats):
            relus = [n for n, m in blk.named_children() if isinstance(m, nn.ReLU)]
            if relus:
                names.append(f"features.{i}.{relus[-1]}")
        if names and getattr(model, "gate", None) is not None:
            names[-1] = "gate"  # the gated last map is what the LSTM reads
        if names:
            return names
    return [model.cam_layer]


def method_layers(model: nn.Module, method: str, layer: str | None = None) -> list[str]:
    """The layers a method reads (`layer` overrides the single layer of gradcam/hirescam/layercam)."""
    if method not in METHODS:
        raise TumorlensError(f"unknown explanation method {method!r} (expected one of {', '.join(METHODS)})")
    blocks = block_layers(model)
    if layer is not None:
        if method == "multilayer":
            raise TumorlensError("multilayer reads fixed layers; `layer` applies to the other methods")
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise TumorlensError(f"the model has no layer {layer!r}") from None
        return [layer]
    cam = getattr(model, "cam_layer", blocks[-1])
    if method in ("gradcam", "hirescam"):
        return [cam]
    if method == "layercam":
        return [blocks[-2] if len(blocks) >= 2 else cam]
    if method == "fused":
        return [cam, blocks[0]] if blocks[0] != cam else [cam]
    if method == "gated":
        if getattr(model, "gate", None) is None:
            raise TumorlensError("method 'gated' needs a model with a tumour gate (ModelConfig.gate)")
        return [blocks[0]]
    return blocks[-3:][::-1]  # multilayer: last block first


# --------------------------------------------------------------------------------------- explainer
def _targets(targets: Any, logits: torch.Tensor) -> torch.Tensor:
    b, k = logits.shape
    if targets is None:
        return logits.argmax(1)
    a = np.asarray(targets)
    if a.dtype.kind not in "iu" and not (a.dtype.kind in "fb" and a.size and np.all(np.mod(a, 1) == 0)):
        # 1.7 became class 1 and "glioma" a numpy TypeError: class indices only (classes are model-specific)
        raise TumorlensError(f"targets must be class indices (integers), got {targets!r}")
    t = torch.as_tensor(a.astype(np.int64), dtype=torch.long).reshape(-1)
    if t.numel() == 1 and b != 1:
        t = t.expand(b)
    if t.numel() != b:
        raise TumorlensError(f"{t.numel()} target classes for {b} images")
    if bool(((t < 0) | (t >= k)).any()):
        raise TumorlensError(f"target class out of range 0..{k - 1}: {t.tolist()}")
    return t.to(logits.device)


def _backend_off(backend: Any):
    """`backend.flags(enabled=False)` (cudnn or mkldnn), leaving every other flag of it as it is.

    `flags()` sets all its arguments (benchmark=False, deterministic=False, ...) unless given None, and
    its signature changes between torch versions, so each other argument is passed as None by name.
    """
    params = inspect.signature(backend.flags).parameters
    return backend.flags(enabled=False, **{k: None for k in params if k != "enabled"})


_flag_lock = threading.Lock()
_flag_users: dict[str, list[Any]] = {}  # backend name -> [explainers inside, its flags() context]


@contextlib.contextmanager
def _backend_disabled(name: str, backend: Any):
    """Process-wide: the first explainer to enter switches `backend` off, the last to leave restores it.

    The flags are global, so with two explainers in different threads a plain `flags()` context would
    let the one that entered second 'restore' the switched-off state when it leaves last.
    """
    with _flag_lock:
        entry = _flag_users.get(name)
        if entry is None:
            ctx = _backend_off(backend)
            ctx.__enter__()
            entry = _flag_users[name] = [0, ctx]
        entry[0] += 1
    try:
        yield
    finally:
        with _flag_lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _flag_users[name]
                entry[1].__exit__(None, None, None)


class Explainer:
    """Captures activations of `layers` and their gradients for one class score per image.

    Use as a context manager; hooks are registered on entry and removed on exit, and the model's
    training flags, grad mode, inference mode and the cuDNN / oneDNN flags are restored, also when the
    body raises. cuDNN is switched off on CUDA (or if `disable_cudnn=True`): it refuses the LSTM's
    backward in eval mode. oneDNN (mkldnn) is switched off during each RNN's forward call (a pre-hook
    and a hook on every RNN module; `disable_mkldnn=False` keeps it): its LSTM forward+backward took
    0.90 s for a batch of 64 where ATen's took 0.15 s (2 threads), while the convolutions keep oneDNN
    (twice as fast as ATen's for a channels_last model). The flags are process-wide: they are off while
    any explainer needs them off and restored when the last one is done; another thread running the
    model meanwhile runs the ATen kernels (same results to float rounding).

        with Explainer(model, ["features.3.2"]) as ex:
            logits, targets, acts, grads = ex.run(x, targets)
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], disable_cudnn: bool | None = None,
                 disable_mkldnn: bool = True):
        self.model = model
        self.layers = list(layers)
        self.modules = [model.get_submodule(n) for n in self.layers]
        if disable_cudnn is None:
            disable_cudnn = any(p.is_cuda for p in model.parameters())
        self.disable_cudnn = disable_cudnn
        self.disable_mkldnn = disable_mkldnn
        self._stack: contextlib.ExitStack | None = None
        self._acts: dict[int, torch.Tensor] = {}
        self._thread = 0
        self._open: list[Any] = []  # mkldnn-off contexts entered by an RNN's pre-hook, not yet left

    def _hook(self, idx: int):
        def hook(module, inputs, output):
            if threading.get_ident() == self._thread:  # other threads' forward passes are not ours
                self._acts[idx] = output
        return hook

    def _rnn_enter(self, module, inputs):
        if threading.get_ident() == self._thread:
            ctx = _backend_disabled("mkldnn", torch.backends.mkldnn)
            ctx.__enter__()
            self._open.append(ctx)

    def _rnn_leave(self, module, inputs, output):
        if threading.get_ident() == self._thread and self._open:
            self._open.pop().__exit__(None, None, None)

    def _close_open(self) -> None:  # an RNN that raised never reached its post-hook
        while self._open:
            self._open.pop().__exit__(None, None, None)

    def __enter__(self) -> "Explainer":
        if self._stack is not None:  # a second, nested entry would replace the first's restore list
            raise RuntimeError("this Explainer is already in use: leave its `with` block before entering it again")
        stack = contextlib.ExitStack()
        try:
            modes = [(m, m.training) for m in self.model.modules()]

            def restore_modes() -> None:
                for m, t in modes:
                    m.training = t

            stack.callback(restore_modes)
            self.model.eval()
            stack.enter_context(torch.inference_mode(False))
            stack.enter_context(torch.enable_grad())
            if self.disable_cudnn:
                stack.enter_context(_backend_disabled("cudnn", torch.backends.cudnn))
            self._thread = threading.get_ident()
            if self.disable_mkldnn:  # only around the RNNs: the convolutions keep oneDNN's fast kernels
                stack.callback(self._close_open)
                for m in self.model.modules():
                    if isinstance(m, nn.RNNBase):
                        stack.callback(m.register_forward_pre_hook(self._rnn_enter).remove)
                        stack.callback(m.register_forward_hook(self._rnn_leave).remove)
            for i, m in enumerate(self.modules):
                stack.callback(m.register_forward_hook(self._hook(i)).remove)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: Any) -> None:
        self._acts.clear()
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def run(self, x: torch.Tensor, targets: Any = None
            ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """x (B, 1, S, S) -> (logits (B, K), targets (B,), activations, gradients of the target scores).

        targets: None (each image's predicted class), one class index for all, or one per image.
        """
        if self._stack is None:
            raise RuntimeError("Explainer.run outside its `with` block")
        self._acts.clear()
        # a fresh leaf that requires grad: the graph exists even if the weights are frozen, and an
        # inference-mode tensor from the caller becomes an ordinary one
        x = x.detach().clone().requires_grad_(True)
        logits = self.model(x)
        missing = [self.layers[i] for i in range(len(self.layers)) if i not in self._acts]
        if missing:
            raise TumorlensError(f"layer(s) {', '.join(missing)} not reached by the forward pass")
        acts = [self._acts[i] for i in range(len(self.layers))]
        t = _targets(targets, logits.detach())
        score = logits.gather(1, t.view(-1, 1)).sum()  # in eval mode the images are independent
        grads = list(torch.autograd.grad(score, acts))
        self._acts.clear()
        return logits.detach(), t, [a.detach() for a in acts], [g.detach() for g in grads]


# ------------------------------------------------------------------------------------------- maps
def _normalize(cam: torch.Tensor) -> torch.Tensor:
    """(B, S, S) >= 0 -> each map divided by its maximum; an all-zero (or non-finite) map stays zero."""
    cam = torch.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    peak = cam.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), torch.zeros_like(cam)).clamp(0, 1)


def _combine(method: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Activations and gradients (B, C, h, w) -> raw map (B, h, w) >= 0."""
    if method == "gradcam":
        return F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    if method == "hirescam":
        return F.relu((g * a).sum(1))
    return F.relu((F.relu(g) * a).sum(1))  # layercam (and each layer of multilayer)


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two normalised maps (B, S, S) -> their normalised pixelwise product. Where the two share no positive
    pixel the product is blank; their normalised mean is shown then, so a slice with any positive evidence
    never gets an empty map."""
    cam = _normalize(a * b)
    empty = cam.flatten(1).amax(1) == 0
    if bool(empty.any()):
        cam[empty] = _normalize((a[empty] + b[empty]) / 2)
    return cam


def _up(cam: torch.Tensor, size: int) -> torch.Tensor:
    if cam.shape[-1] == size and cam.shape[-2] == size:
        return cam
    return F.interpolate(cam.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False).squeeze(1)


def explain_batch(model: nn.Module, x: torch.Tensor | np.ndarray, targets: Any = None,
                  method: str | None = None, layer: str | None = None,
                  disable_cudnn: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps for a batch: x (B, 1, S, S) in [0, 1] -> (cams (B, S, S) float32 in [0, 1], probs (B, K)).

    targets: None (each image's predicted class), one class index for all, or one per image.
    probs are the model's uncalibrated softmax probabilities (the Predictor applies its temperature).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise TumorlensError(f"expected a batch of shape (B, 1, S, S), got {tuple(x.shape)}")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        # as Predictor.check_inputs: a 0..255 batch explained another class, a NaN one gave an empty map
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise TumorlensError(f"explain_batch expects preprocessed slices in [0, 1], got values from {lo:.4g} "
                                 f"to {hi:.4g}")
    size = x.shape[-1]
    method = method or default_method(model)
    layers = method_layers(model, method, layer)
    try:
        dev = next(model.parameters()).device
    except StopIteration:
        dev = torch.device("cpu")
    x = x.to(dev)
    with Explainer(model, layers, disable_cudnn) as ex:
        logits, _, acts, grads = ex.run(x, targets)
        with torch.no_grad():
            if method == "fused":  # Grad-CAM on the CAM layer x LayerCAM on the first block, pixel by pixel
                maps = [_normalize(_up(_combine(m, a, g), size))
                        for m, a, g in zip(("gradcam", "layercam"), acts, grads)]
                cam = maps[0] if len(maps) == 1 else _product(maps[0], maps[1])
            elif method == "gated":  # the gate's tumour map x LayerCAM on the first block
                cam = _product(_normalize(_up(model.tumour_map(x), size)),
                               _normalize(_up(_combine("layercam", acts[0], grads[0]), size)))
            else:
                maps = [_normalize(_up(_combine(method, a, g), size)) for a, g in zip(acts, grads)]
                cam = maps[0] if len(maps) == 1 else _normalize(torch.stack(maps).mean(0))
    probs = torch.softmax(logits.double(), 1).float()
    return cam.cpu().numpy().astype(np.float32), probs.cpu().numpy()


EMPTY_MAP_MAX = 1e-6  # a heatmap whose maximum is at most this shows no evidence at all


def heatmap_is_empty(heat: np.ndarray) -> bool:
    """True when a heatmap shows no evidence: its largest finite value is at most EMPTY_MAP_MAX (or it has no
    finite value). Maps are divided by their maximum, so a map that found anything peaks near 1; an empty one is
    all zeros, and an overlay of it would look like "nothing here" rather than "the method found nothing", so
    callers must say so (see cli_explain)."""
    h = np.asarray(heat, dtype=np.float32)
    finite = h[np.isfinite(h)]
    return finite.size == 0 or float(finite.max()) <= EMPTY_MAP_MAX


def paste_cam(cam: np.ndarray, box: tuple[int, int, int], orig_shape: tuple[int, int]) -> np.ndarray:
    """An S x S map of the crop `box` (top, left, side) -> (H, W) map of the original image.

    The map is resized to side x side and pasted at (top, left) into a zero canvas; the parts of the box
    outside the image (zero padding) are clipped away.
    """
    top, left, side = (int(v) for v in box)
    h, w = (int(v) for v in orig_shape[:2])
    out = np.zeros((h, w), dtype=np.float32)
    if side <= 0:
        return out
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, h), min(left + side, w)
    if r1 <= r0 or c1 <= c0:
        return out
    up = resize(np.asarray(cam, dtype=np.float32), side)
    out[r0:r1, c0:c1] = up[r0 - top:r1 - top, c0 - left:c1 - left]
    return np.clip(out, 0.0, 1.0, out=out)


def explain_slice(model: nn.Module, x: np.ndarray, box: tuple[int, int, int], orig_shape: tuple[int, int],
                  target: int | None = None, method: str | None = None) -> np.ndarray:
    """One preprocessed slice x (S, S) -> heatmap (H, W) float32 in [0, 1] at the original resolution.

    `box` is the crop square in original-image coordinates that `preprocess_array` cut (scaled to full
    resolution if the image was draft-decoded); target None explains the predicted class.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise TumorlensError(f"explain_slice expects one (S, S) slice, got shape {x.shape}")
    cams, _ = explain_batch(model, torch.from_numpy(x)[None, None], None if target is None else [int(target)],
                            method)
    return paste_cam(cams[0], box, orig_shape)


# ------------------------------------------------------------------------------------------ overlay
OVERLAY_MIN_WIDTH, OVERLAY_MAX_WIDTH = 561, 2048  # pixels of the scan in an overlay figure (561: 5.1 in at 110 dpi)


def overlay_png(gray_orig: np.ndarray, heat_orig: np.ndarray, path: str | os.PathLike, title: str = "",
                mask: np.ndarray | None = None, alpha: float = 0.5, cmap: str = "jet") -> Path:
    """Write the scan (gray) with the heatmap overlaid, a colour bar, `title` and the disclaimer footer.

    The scan is drawn one image pixel to one output pixel for widths from OVERLAY_MIN_WIDTH to
    OVERLAY_MAX_WIDTH; narrower scans are enlarged to the first (so that the title and the footer stay
    legible) and wider ones reduced to the second (the .npy map keeps the full resolution). The heat's opacity
    grows with its value, so cold regions leave the anatomy visible. `mask`, if given (same shape), is
    outlined in green (the reference segmentation). Written atomically.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from .fileio import atomic_write_bytes

    g = np.asarray(gray_orig, dtype=np.float32)
    heat = np.asarray(heat_orig, dtype=np.float32)
    if g.ndim != 2 or heat.shape != g.shape:
        raise TumorlensError(f"overlay needs a 2-D image and a heatmap of the same shape, got {g.shape} "
                             f"and {heat.shape}")
    if mask is not None and np.shape(mask) != g.shape:
        raise TumorlensError(f"overlay mask must have the image's shape {g.shape}, got {np.shape(mask)}")
    if not 0.0 <= alpha <= 1.0:  # above 1 the 8-bit opacity wrapped round: the hottest pixels turned clear
        raise TumorlensError(f"overlay alpha must be in [0, 1], got {alpha}")
    if cmap not in colormaps:
        raise TumorlensError(f"overlay colour map {cmap!r} is not one of matplotlib's")
    g = np.nan_to_num(g)
    heat = np.nan_to_num(heat)
    h, w = g.shape
    if w > OVERLAY_MAX_WIDTH:
        # reduced here (area-weighted), to the width it is drawn at: left to matplotlib, a 4000 x 3000 scan was
        # colour-mapped into a float64 copy of 12 M pixels and resampled twice, ~5 s per overlay
        size = (max(1, round(h * OVERLAY_MAX_WIDTH / w)), OVERLAY_MAX_WIDTH)
        g, heat = resize(g, size), resize(heat, size)
        if mask is not None:
            mask = resize(np.asarray(mask, dtype=np.float32), size) >= 0.5
        h, w = g.shape
    lo, hi = (float(v) for v in np.percentile(g, [0.5, 99.5]))
    g = np.clip((g - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(g)
    heat = np.clip(heat, 0, 1)
    # 8-bit RGBA from the colour map's 256 entries, indexed as matplotlib indexes them (min(int(256 x), 255)):
    # the same colours as colormaps[cmap](heat), without its float64 (H, W, 4) array
    lut = np.round(colormaps[cmap](np.arange(256) / 255.0) * 255).astype(np.uint8)  # (256, 4)
    rgba = lut[np.minimum((heat * 256).astype(np.int32), 255)]
    rgba[..., 3] = np.round(255 * alpha * np.sqrt(heat)).astype(np.uint8)
    img_w = 5.1  # inches; the image's height follows its aspect ratio, plus room for title and footer
    img_h = img_w * h / w
    fig_h = img_h + 0.95
    # the resolution that draws the scan at its own width (the figure was 110 dpi whatever the scan: a 1,536-px
    # scan came out 561 px wide, against "original resolution" in the docs; a helper's audit)
    dpi = min(max(w, OVERLAY_MIN_WIDTH), OVERLAY_MAX_WIDTH) / img_w
    fig = Figure(figsize=(6.4, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.03, 0.35 / fig_h, img_w / 6.4, img_h / fig_h))
    ax.imshow(g, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    ax.imshow(rgba, interpolation="antialiased")
    if mask is not None and np.asarray(mask).any():
        ax.contour(np.asarray(mask, dtype=np.float32), levels=[0.5], colors="lime", linewidths=1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    cax = fig.add_axes((0.86, (0.35 + 0.15 * img_h) / fig_h, 0.03, 0.7 * img_h / fig_h))
    cb = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[cmap]), cax=cax)
    cb.set_label("relative evidence for the explained class", fontsize=8)
    fig.text(0.5, 0.012, DISCLAIMER, ha="center", va="bottom", fontsize=7, color="0.35")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())
