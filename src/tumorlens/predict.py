"""`Predictor`: the one path from an input to an answer (probabilities, status, heatmap).

The CLI, the web app and evaluation all go through it, so they cannot preprocess differently: the
preprocessing settings come from the checkpoint (as timm keeps preprocessing with the model).
"""
from __future__ import annotations

import glob
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .config import NoImageError, TumorlensError
from .data import preprocess_array
from .prepare import model_outputs

log = logging.getLogger(__name__)

STATUSES = ("ok", "uncertain", "rejected", "error")
# how a refusal by the feature distance begins (the image checks before the model word theirs otherwise)
DISTANCE_REASON = "unlike the brain MRI slices the model was trained on"


@dataclass(frozen=True)
class Record:
    """One answer. `heatmap` (original resolution, [0, 1]) is kept out of the JSON form."""

    path: str
    status: str
    label: str | None = None
    probabilities: dict[str, float] | None = None
    confidence: float | None = None
    reason: str | None = None
    frame: int | None = None
    slice: int | None = None
    heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # original-resolution gray
    # an error record of a DICOM object without an image (config.NoImageError); kept out of the JSON form
    no_image: bool = field(default=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        # built by hand: dataclasses.asdict deep-copies every field, which took 0.4 ms a record (a sixth of
        # the end-to-end time per slice, measured with cProfile on 1,000 PNGs)
        d: dict[str, Any] = {"path": self.path, "status": self.status, "label": self.label,
                             "probabilities": None if self.probabilities is None else dict(self.probabilities),
                             "confidence": self.confidence, "reason": self.reason}
        for k in ("frame", "slice"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


# In a folder, files with these suffixes (or named DICOMDIR, a DICOM media index without pixels) are skipped
# rather than reported as errors: a folder of scans often holds notes, spreadsheets or code, and an error
# record for each made the exit code say "failed". Named one by one they are still read (and fail). Files
# without a suffix are always read: DICOM files often have none. ".gz" is not here (".nii.gz").
NOT_IMAGES = frozenset({".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".html", ".htm", ".pdf",
                        ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".py", ".pyc", ".pyi", ".ipynb", ".sh",
                        ".js", ".css", ".yaml", ".yml", ".ini", ".cfg", ".toml", ".log", ".npy", ".npz", ".zip",
                        ".tar", ".7z", ".exe", ".dll", ".so"})


def _suffix(path: str) -> str:
    """`Path(path).suffix.lower()`, without building a Path (called once per listed file)."""
    name = os.path.basename(path.rstrip("/" + os.sep))
    i = name.rfind(".")
    return name[i:].lower() if 0 < i < len(name) - 1 else ""


def _not_an_image(path: str) -> bool:
    return _suffix(path) in NOT_IMAGES or os.path.basename(path).upper() == "DICOMDIR"


# suffixes of 2-D images and DICOM files, for the --slice warning only, which goes by name: any other name
# (".nii", ".nii.gz", no suffix, an unknown one) may be a volume, as the readers tell formats apart by content
NOT_VOLUMES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom"})


def _may_be_nifti(path: str) -> bool:
    return _suffix(path) not in NOT_VOLUMES


def one_line(reason: str) -> str:
    """An error message as one line: line breaks, with the spaces around them, become one space. Some
    libraries' messages span lines (nibabel: "...\\n - could the file be damaged?"), and a record's reason is
    printed as one line by the CLI and shown as one by the web page."""
    return re.sub(r"\s*[\r\n]+\s*", " ", reason).strip()


def as_gray(image: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """A 2-D float32 slice from an in-memory image (`Predictor.predict_gray`), and what was measured on the way
    (the colour of an RGB source, for the refusal); TumorlensError when it is no single 2-D image."""
    from .readers import _GREY, colour_stats

    if image is None:
        raise TumorlensError("no image (None)")
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image: greyed as the file readers grey it
        from .data import _to_gray_array

        colour = image.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV")
        measured = colour_stats(np.asarray(image.convert("RGB"), dtype=np.float32)) if colour else dict(_GREY)
        g = _to_gray_array(image)  # transparent pixels black, as in a file (alpha had been dropped; an audit)
        if g.ndim != 2 or g.size == 0:
            raise TumorlensError(f"expected one 2-D slice, got a PIL image of size {image.size}")
        return np.ascontiguousarray(g, dtype=np.float32), measured
    if hasattr(image, "detach"):  # a torch tensor
        image = image.detach().cpu().numpy()
    a = np.asarray(image)
    if a.dtype.kind == "c":
        raise TumorlensError(f"complex values ({a.dtype}); give the magnitude image")
    if a.dtype.kind not in "biuf":
        raise TumorlensError(f"not a numeric image (dtype {a.dtype})")
    shape = a.shape
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]  # (1, H, W), (1, 1, H, W) -> (H, W)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)  # channels first (torchvision's layout) -> last
    measured: dict[str, Any] = dict(_GREY)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgb = a[..., :3].astype(np.float32)
        unit = rgb.max(initial=0) <= 1.0  # floats in 0..1
        measured = colour_stats(rgb * 255.0 if unit else rgb)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if a.shape[-1] == 4:  # RGBA: transparent pixels black, as the file readers make them (data._to_gray_array)
            alpha = a[..., 3].astype(np.float32)
            full = float(np.iinfo(a.dtype).max) if a.dtype.kind in "iu" else (1.0 if unit else 255.0)
            gray = gray * np.clip(alpha / full, 0.0, 1.0)
        a = gray
    if a.ndim != 2 or a.size == 0:
        raise TumorlensError(f"expected one 2-D slice (or an RGB image), got shape {shape}")
    return np.ascontiguousarray(a, dtype=np.float32), measured


def _unexpected(path: str, e: Exception) -> Record:
    """The error record of an input whose reading failed in a way no check foresaw: the batch goes on (as in
    the worker processes, prepare.prepare_in_worker), and the reason says what happened."""
    log.debug("unexpected error reading %s", path, exc_info=True)
    return _error(path, f"{path}: unexpected error ({type(e).__name__}: {e})")


def _error(path: str, e: Exception | str, no_image: bool = False, **where: Any) -> Record:
    """The error record of an input that could not be read (the reason made one line)."""
    return Record(path, "error", reason=one_line(str(e)), no_image=no_image or isinstance(e, NoImageError), **where)


def _broken_link(q: Path) -> bool:
    return q.is_symlink() and not q.exists()


def _kind(q: Path) -> str | None:
    """'file', 'broken' (a symbolic link to nothing), or None (a folder, or nothing there)."""
    if q.is_file():
        return "file"
    return "broken" if _broken_link(q) else None


def _walk(top: str) -> list[tuple[str, str]]:
    """(path, 'file' or 'broken') of every file and symbolic link to nothing under the folder `top`, in the order
    Paths sort (folder by folder, name by name); hidden names (leading '.') are skipped, and symbolic links to
    folders are not followed (as `Path.rglob`). os.scandir reads each entry's type with the listing: the
    listing of 1,000 files took 2.3 ms against 15 ms with rglob, Path objects and their sorting (throwaway
    timing 2026-11-28), time in which the worker processes of `Predictor.predict_paths` wait."""
    found: list[tuple[tuple[str, ...], str, str]] = []

    def visit(folder: str, rel: tuple[str, ...]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # an unreadable sub-folder is passed over, as rglob does
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            here = rel + (os.path.normcase(e.name),)
            try:
                if e.is_dir(follow_symlinks=False):
                    visit(e.path, here)
                elif e.is_file():
                    found.append((here, e.path, "file"))
                elif e.is_symlink() and not os.path.exists(e.path):
                    found.append((here, e.path, "broken"))
            except OSError:
                continue

    visit(top, ())
    found.sort()
    return [(path, kind) for _, path, kind in found]


def _path_list(inputs: Iterable[str | os.PathLike] | str | os.PathLike) -> list[str]:
    """Inputs as a list of path strings; one path given alone (a string or Path) is one input - a string
    iterated would be its characters ("." the working folder, "/" the whole disk)."""
    return [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(i) for i in inputs]


def expand_inputs(inputs: Iterable[str] | str | os.PathLike) -> Iterator[tuple[str, str | None]]:
    """Files, folders (recursive, sorted) and globs -> (path, error or None) in a stable order. In folders,
    files that are not images by their name (`NOT_IMAGES`) are skipped, with one logged line per folder.
    A symbolic link to nothing is an error wherever it is found, never dropped: the user expects its file.
    One path given alone (a string or Path) is one input, not a sequence of characters."""
    for item in _path_list(inputs):
        p = Path(item)
        if p.is_dir():
            found = _walk(str(p))
            skipped = [q for q, _ in found if _not_an_image(q)]
            if skipped:
                log.warning("%s: skipped %d file(s) that are not images by their name (e.g. %s)", item,
                            len(skipped), os.path.basename(skipped[0]))
                found = [(q, k) for q, k in found if not _not_an_image(q)]
            if not found:
                yield item, f"{item}: folder holds no files" + (" that could be images" if skipped else "")
            for q, k in found:
                yield q, (f"{q}: broken symbolic link" if k == "broken" else None)
        elif p.is_file():
            yield item, None
        elif _broken_link(p):
            yield item, f"{item}: broken symbolic link"
        elif any(ch in item for ch in "*?["):
            matches = sorted((m, k) for m in glob.glob(item, recursive=True) if (k := _kind(Path(m))))
            if not matches:
                yield item, f"{item}: no file matches this pattern"
            yield from ((m, f"{m}: broken symbolic link" if k == "broken" else None) for m, k in matches)
        elif p.exists():  # a FIFO, socket or device (or a link to one): reading it could block forever
            yield item, f"{item}: not a regular file (a device, pipe or socket)"
        else:
            yield item, f"{item}: no such file or folder"


def list_inputs(inputs: Iterable[str], outputs: str | os.PathLike | None = None,
                is_output: Callable[[Path], bool] | None = None) -> tuple[list[tuple[str, str | None]], int]:
    """`expand_inputs` as a list, less the files found in folders or by globs that lie inside the folder
    `outputs` and that `is_output` (default: any file) takes for the command's own output; and how many
    those were.

    A command whose output folder lies in an input folder would otherwise read its own earlier outputs
    (heatmap overlays) back as inputs on a rerun. `is_output` lets the user's scans in that folder (it may
    be the input folder itself) still be read. A file named as it is was asked for: always kept.
    """
    listed: list[tuple[str, str | None]] = []
    ignored = 0
    out_abs = Path(outputs).resolve() if outputs is not None else None
    for item in inputs:
        for path, err in expand_inputs([item]):
            q = Path(path)
            if out_abs is not None and err is None and path != item and out_abs in q.resolve().parents \
                    and (is_output is None or is_output(q)):
                ignored += 1
            else:
                listed.append((path, err))
    return listed, ignored


class Predictor:
    """Classifies grayscale slices with a checkpoint's model, preprocessing, calibration and refusal.

    Every record passes, in order: reading (error), the header and image-statistics checks of
    `refusal.check_image` (rejected), the model, the feature-space distance of `refusal.FeatureOOD` when the
    checkpoint holds one (rejected), and the abstention threshold (uncertain below it, else ok). Rejected
    records carry no label and no probabilities, only the reason. `refuse=False` switches the refusal
    layers off (evaluation on known MRI test sets).

    backend: 'torch', 'onnx' (ONNX Runtime, see runtime.py) or 'auto' (ONNX Runtime for batches of at least
    `ORT_MIN_BATCH` when it is installed and matches PyTorch on the first such batch, else PyTorch).
    """

    ORT_MIN_BATCH = 16
    # ONNX Runtime runs this model fastest in small calls: per image 0.80 ms in calls of 8-32 slices against
    # 0.86 at 64 and 0.92 at 128-512 (bundled model, 1 thread, best of 5 over 512 slices, measured twice)
    ORT_CHUNK = 16

    explain_method: str | None = None  # heatmap method (None: the model's default); set by `tumorlens explain`
    explain_target: int | None = None  # class index the heatmaps explain (None: the predicted class)

    @property
    def heatmap_method(self) -> str:
        """The method heatmaps are made with: `explain_method`, else the model's default (what `explain_batch`
        falls back to), so titles and records can name it."""
        from .explain import default_method

        return self.explain_method or default_method(self.model)

    def __init__(self, checkpoint: Checkpoint | str | os.PathLike | None = None, refuse: bool = True,
                 backend: str = "auto"):
        self.ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.model = self.ckpt.model.eval()
        self.pre = self.ckpt.preprocess
        self.classes = tuple(self.ckpt.classes)
        self.temperature = self.ckpt.temperature
        self.threshold = float(self.ckpt.meta.get("abstention", {}).get("threshold", 0.0))
        # average each slice with its left-right mirror (TrainConfig.flip_average); the checkpoint's
        # temperature, abstention threshold and feature-distance refusal were all fitted on these averages
        self.flip_average = bool(self.ckpt.config.flip_average)
        self.refuse = refuse
        ood = self.ckpt.meta.get("refusal", {}).get("ood")
        self.ood = None
        if ood:
            from .refusal import FeatureOOD

            self.ood = FeatureOOD.from_meta(ood)
        look = self.ckpt.meta.get("refusal", {}).get("lookalike")
        self.lookalike = None
        if look:
            from .lookalike import Lookalike

            self.lookalike = Lookalike.from_meta(look)
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be auto, torch or onnx, not {backend!r}")
        self.backend = backend
        self._ort: Any = None  # runtime.OrtModel once built; False once it failed or mismatched
        self._ort_lock = threading.Lock()
        self._ort_threads: int | None = None  # None: torch's thread count

    # ---------------------------------------------------------------------------------- arrays
    @torch.no_grad()
    def _torch_logits_and_features(self, x: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)  # (N, 1, S, S)
        zs, fs = [], []
        for i in range(0, len(t), batch):
            z, f = self.model.forward_with_pooled(t[i:i + batch].contiguous(memory_format=torch.channels_last))
            zs.append(z)  # (B, K)
            fs.append(f)  # (B, sum C_i): every block's output averaged over positions
        return torch.cat(zs).numpy(), torch.cat(fs).numpy()

    def _ort_model(self, x: np.ndarray) -> Any:
        """The ONNX Runtime copy, built and checked against PyTorch on `x` the first time (None: use PyTorch).
        Built once, under a lock: two threads' first calls had both exported, and one export failed."""
        if self._ort is not None:
            return self._ort or None
        with self._ort_lock:
            return self._build_ort(x)

    def _build_ort(self, x: np.ndarray) -> Any:
        if self._ort is None:
            from .runtime import PARITY_ATOL, try_build

            ort = try_build(self.model, self.pre.size, self._ort_threads or torch.get_num_threads())
            if ort is not None:
                probe = x[:8]
                z0, f0 = self._torch_logits_and_features(probe)
                z1, f1 = ort.run(probe)
                err = max(float(np.abs(z0 - z1).max()), float(np.abs(f0 - f1).max()))
                if err > PARITY_ATOL:
                    log.warning("ONNX Runtime differs from PyTorch by %.2g (> %g); using PyTorch", err, PARITY_ATOL)
                    ort = None
                else:
                    log.info("ONNX Runtime path on (max difference from PyTorch %.2g)", err)
            self._ort = ort if ort is not None else False
        return self._ort or None

    def check_inputs(self, x: Any) -> np.ndarray:
        """Preprocessed inputs as the model takes them - (N, S, S) float32 in [0, 1], S the checkpoint's size -
        or one TumorlensError saying what is wrong. A 0..255 array had flipped a glioma to 'notumor' at 0.985
        without a word, and a wrong shape failed deep inside torch or ONNX Runtime, differently by batch size
        (a library audit). `preprocess` / `predict_gray` take raw slices of any scale."""
        size = self.pre.size
        if not isinstance(x, np.ndarray):
            raise TumorlensError(f"expected a numpy array of preprocessed slices (N, {size}, {size}), got "
                                 f"{type(x).__name__}; Predictor.preprocess makes one from a raw slice")
        if x.ndim != 3 or x.shape[1:] != (size, size):
            raise TumorlensError(f"expected preprocessed slices of shape (N, {size}, {size}), got {x.shape}; "
                                 f"Predictor.preprocess makes one from a raw slice")
        if x.dtype.kind not in "fiub":
            raise TumorlensError(f"expected real-valued slices, got dtype {x.dtype}")
        x = np.asarray(x, dtype=np.float32)
        if x.size:
            lo, hi = float(x.min()), float(x.max())
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise TumorlensError("preprocessed slices hold NaN or infinite values")
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise TumorlensError(f"preprocessed slices must lie in [0, 1] (as Predictor.preprocess makes them), "
                                     f"got values from {lo:.4g} to {hi:.4g}")
        return x

    def logits_and_features(self, x: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed inputs (N, S, S) -> raw logits (N, K) and every conv block's mean-pooled output
        (N, sum C_i), before the gate when the model has one (`TumorNet.forward_with_pooled`). With
        `flip_average` both are the mean over the slice and its left-right mirror, so a mirrored slice gets the
        same answer."""
        x = self.check_inputs(x)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32), np.zeros((0, 0), np.float32)
        # the backend is chosen by the number of slices asked for, not of model inputs (twice as many when
        # mirrored): a handful of files must not pay for the ONNX export (about 0.3 s)
        if self.backend == "onnx" or (self.backend == "auto" and len(x) >= self.ORT_MIN_BATCH):
            ort = self._ort_model(x)
            if ort is not None:
                return model_outputs(ort.run, x, self.flip_average, min(batch, self.ORT_CHUNK))
        return model_outputs(lambda v: self._torch_logits_and_features(v, batch), x, self.flip_average)

    def logits(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Preprocessed inputs (N, S, S) -> raw logits (N, K)."""
        return self.logits_and_features(x, batch)[0]

    def _softmax(self, z: np.ndarray) -> np.ndarray:
        z = z / self.temperature
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed inputs (N, S, S) -> temperature-calibrated probabilities (N, K)."""
        return self._softmax(self.logits(x))

    def preprocess(self, gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
        return preprocess_array(gray, self.pre)

    # ---------------------------------------------------------------------------------- records
    def record_from_probs(self, path: str, probs: np.ndarray, **where: Any) -> Record:
        # NaN compares False with the threshold and would pass as `ok`; load_checkpoint refuses non-finite
        # weights, so this is the second line of defence (e.g. an overflow inside the model)
        if not np.all(np.isfinite(probs)):
            return Record(path, "error", reason=f"{path}: the model's output is not finite (NaN or inf); "
                                                 f"no answer", **where)
        k = int(probs.argmax())
        conf = float(probs[k])
        pd = {c: round(float(p), 6) for c, p in zip(self.classes, probs)}
        if conf < self.threshold:
            return Record(path, "uncertain", self.classes[k], pd, conf,
                          f"confidence {conf:.3f} below the abstention threshold {self.threshold:.3f}", **where)
        return Record(path, "ok", self.classes[k], pd, conf, **where)

    def classify_frames(self, items: list[tuple[str, Any]], explain: bool = False,
                        method: str | None = None) -> list[Record]:
        """(path, readers.Frame) pairs -> one record each, in order; the model runs once on the batch."""
        from .prepare import prepare_frame

        prepared = [prepare_frame(path, fr, self.pre, self.refuse) for path, fr in items]
        return self.classify_prepared(prepared, [fr for _, fr in items] if explain else None, method)

    def classify_prepared(self, prepared: list[Any], frames: list[Any] | None = None,
                          method: str | None = None) -> list[Record]:
        """`prepare.Prepared` frames -> records, in order: the model, the feature-distance refusal and the
        abstention threshold. With `frames` (the matching readers.Frame objects) records carry heatmaps."""
        recs: list[Record | None] = [None] * len(prepared)
        todo = []
        for i, p in enumerate(prepared):
            if p.status == "error":
                recs[i] = _error(p.path, p.reason or "", no_image=p.no_image, **p.where)
            elif p.status is not None:
                recs[i] = Record(p.path, p.status, reason=p.reason, **p.where)
            else:
                todo.append(i)
        if todo:
            # a worker process may have run the model already (prepare_task); the rest run here
            need = [i for i in todo if prepared[i].z is None]
            here: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            if need:
                z_need, f_need = self.logits_and_features(np.stack([prepared[i].x for i in need]))
                here = {i: (z_need[j], f_need[j]) for j, i in enumerate(need)}
            zf = [here[i] if i in here else (prepared[i].z, prepared[i].f) for i in todo]
            z, feats = np.stack([a for a, _ in zf]), np.stack([b for _, b in zf])
            probs = self._softmax(z)
            scores = self.ood.score(feats) if (self.refuse and self.ood is not None) else None
            look = self.lookalike.score(feats) if (self.refuse and self.lookalike is not None) else None
            for j, i in enumerate(todo):
                p = prepared[i]
                if scores is not None and scores[j] > self.ood.threshold:
                    recs[i] = Record(p.path, "rejected", reason=(
                        f"{DISTANCE_REASON} [feature distance "
                        f"{scores[j]:.3g} > {self.ood.threshold:.3g}]"), **p.where)
                    continue
                if look is not None and look[j] > self.lookalike.threshold:
                    recs[i] = Record(p.path, "rejected", reason=(
                        f"{DISTANCE_REASON}: closer to photographs and textures [look-alike score "
                        f"{look[j]:.3g} > {self.lookalike.threshold:.3g}]"), **p.where)
                    continue
                rec = self.record_from_probs(p.path, probs[j], **p.where)
                if frames is not None and rec.status != "error":
                    rec = self._explain(rec, frames[i], p.x, p.box, int(probs[j].argmax()), method)
                recs[i] = rec
        return [r for r in recs if r is not None]

    def _explain(self, rec: Record, fr: Any, x: np.ndarray, box: tuple[int, int, int], target: int,
                 method: str | None) -> Record:
        from .explain import explain_slice

        method = method or self.explain_method
        target = target if self.explain_target is None else int(self.explain_target)
        full = fr.info.get("_full")  # the full-resolution decode of a draft-decoded JPEG, if any
        image = fr.gray if full is None else full
        if full is not None:
            box = tuple(int(round(v * full.shape[0] / fr.gray.shape[0])) for v in box)
        kw = {"method": method} if method else {}
        heat = explain_slice(self.model, x, box, image.shape, target=target, **kw)
        return Record(**{**asdict(rec), "heatmap": heat, "image": image})

    def predict_gray(self, gray: Any, path: str = "<array>", explain: bool = False,
                     info: dict[str, Any] | None = None, **where: Any) -> Record:
        """Classify one raw slice held in memory (any resolution); optionally attach a heatmap.

        `gray`: a 2-D array, or what a notebook holds - a PIL image, a tensor, an (H, W, 1), (1, H, W) or
        (1, 1, H, W) array, an RGB(A) array (H, W, 3|4) or RGB (3, H, W), which is made grey as the file readers
        make it, its colour measured for the refusal. Anything else (empty, complex, 3-D volumes) gives an
        error record, whatever `refuse` is."""
        from .readers import Frame

        try:
            g, measured = as_gray(gray)
        except TumorlensError as e:
            return _error(path, f"{path}: {e}", **where)
        return self.classify_frames([(path, Frame(g, dict(where), {**measured, **dict(info or {})}))],
                                    explain=explain)[0]

    def _frames(self, src: Any, name: str, explain: bool, slice: int | None) -> list[Any]:
        from .readers import read_frames

        frames = read_frames(src, name=name, slice=slice, draft=4 * self.pre.size)
        if explain and len(frames) == 1 and frames[0].info.get("format") == "JPEG":
            full = read_frames(src, name=name, slice=slice)[0].gray
            if full.shape != frames[0].gray.shape:
                frames[0].info["_full"] = full
        return frames

    def predict_file(self, path: str | os.PathLike, explain: bool = False, slice: int | None = None) -> list[Record]:
        """All records of one file: one per DICOM frame / NIfTI slice (a 2-D image gives one).

        A file that cannot be read gives one error record. 2-D images are decoded as in training
        (`read_gray(path, draft=4 * size)` semantics), so the model sees what it was trained on.
        """
        path = str(path)
        try:
            frames = self._frames(path, path, explain, slice)
        except TumorlensError as e:
            return [_error(path, e)]
        except Exception as e:  # noqa: BLE001 - one bad file must not end the caller's loop
            return [_unexpected(path, e)]
        return self.classify_frames([(path, f) for f in frames], explain=explain)

    def predict_bytes(self, data: bytes, name: str, explain: bool = False, slice: int | None = None) -> list[Record]:
        """Records of an upload held in memory (never written to disk); `name` is its file name. `data`: bytes,
        or a binary file object (io.BytesIO, an open file), which is read."""
        if hasattr(data, "read"):
            data = data.read()
        try:
            frames = self._frames(bytes(data), name, explain, slice)
        except TumorlensError as e:
            return [_error(name, e)]
        except Exception as e:  # noqa: BLE001 - one bad upload must not fail the request
            return [_unexpected(name, e)]
        return self.classify_frames([(name, f) for f in frames], explain=explain)

    def predict_paths(self, inputs: Iterable[str], explain: bool = False, slice: int | None = None,
                      batch: int = 64, workers: int | None = None,
                      named: Iterable[str] | None = None) -> Iterator[Record]:
        """Records for files, folders and globs; a bad input yields an error record and the rest go on.

        Frames of consecutive files are classified together, `batch` at a time; order is kept.
        workers: processes that read, check and preprocess files (None: by the number of files,
        `prepare.auto_workers`; 0: all in this process); with ONNX Runtime they run the model too, else this
        process does. Heatmaps are made in this process.
        DICOM objects without an image (structured reports, presentation states: config.NoImageError) found
        in folders or by globs are passed over with one logged line, so that a PACS export does not "fail";
        a file the user named (`named`, by default `inputs`) still gets its error record.
        """
        inputs = _path_list(inputs)
        named = set(inputs if named is None else _path_list(named))
        passed_over = 0
        for rec in self._predict_paths(inputs, explain, slice, batch, workers):
            if rec.no_image and rec.path not in named:
                passed_over += 1
                continue
            yield rec
        if passed_over:
            log.warning("passed over %d DICOM object(s) without an image (structured reports, presentation "
                        "states, DICOMDIR ...) found in the input folders", passed_over)

    def _predict_paths(self, inputs: list[str], explain: bool, slice: int | None, batch: int,
                       workers: int | None) -> Iterator[Record]:
        from .prepare import Prepared, auto_workers, pool, prepare_task, split_tasks

        listed = list(expand_inputs(inputs))
        readable = [p for p, err in listed if not err]
        if slice is not None and readable and not any(_may_be_nifti(p) for p in readable):
            log.warning("--slice %s applies to NIfTI volumes only, and no input is one by its name: ignored", slice)
        if workers is None:
            workers = 0 if explain else auto_workers(len(listed))
        if workers <= 0 or explain:
            yield from self._predict_listed(listed, explain, slice, batch)
            return
        if self._ort is None:
            self._ort_threads = 1  # the workers keep the cores busy; more model threads only contend (measured)
        paths = [p for p, err in listed if not err]
        onnx = None
        if self.backend == "onnx" or (self.backend == "auto" and len(paths) >= self.ORT_MIN_BATCH):
            # the workers run the model too, on the exported graph that this process checked against PyTorch
            # (on a fixed random batch: the check is of the graph, not of the data)
            probe = np.random.default_rng(0).random((8, self.pre.size, self.pre.size), dtype=np.float32)
            ort = self._ort_model(probe)
            onnx = ort.onnx if ort is not None else None
        pending: list[Any] = []
        # one BLAS thread here meanwhile (the feature-distance score is a small matrix product): OpenBLAS's
        # second thread spin-waits between calls, and took 0.9 s of CPU from the workers over 1,000 PNG
        # slices, 2.6 s against 2.0 s end to end (2 cores; per-thread CPU from /proc, throwaway script 2026-11-27)
        try:
            from threadpoolctl import threadpool_limits

            one_blas_thread: Any = threadpool_limits(limits=1, user_api="blas")
        except ImportError:  # a dependency, but prediction must not fail without it: only slower
            import contextlib

            one_blas_thread = contextlib.nullcontext()
        with one_blas_thread, \
                pool(workers, self.pre, self.refuse, slice, onnx, self.flip_average, self.ORT_CHUNK) as workers_pool:
            tasks = split_tasks(paths, workers)
            done = (file_frames for task in workers_pool.imap(prepare_task, tasks) for file_frames in task)
            for path, err in listed:
                pending.extend([Prepared(path, status="error", reason=err)] if err else next(done))
                if len(pending) >= batch:
                    yield from self.classify_prepared(pending)
                    pending = []
        yield from self.classify_prepared(pending)

    def _predict_listed(self, listed: list[tuple[str, str | None]], explain: bool, slice: int | None,
                        batch: int) -> Iterator[Record]:
        pending: list[Record | tuple[str, Any]] = []
        n_frames = 0

        def flush() -> Iterator[Record]:
            nonlocal pending, n_frames
            items = [p for p in pending if not isinstance(p, Record)]
            done = iter(self.classify_frames(items, explain=explain)) if items else iter(())
            for p in pending:
                yield p if isinstance(p, Record) else next(done)
            pending, n_frames = [], 0

        for path, err in listed:
            if err:
                pending.append(Record(path, "error", reason=err))
            else:
                try:
                    frames = self._frames(path, path, explain, slice)
                except TumorlensError as e:
                    pending.append(_error(path, e))
                except Exception as e:  # noqa: BLE001 - the batch goes on, as in the worker processes
                    pending.append(_unexpected(path, e))
                else:
                    pending.extend((path, f) for f in frames)
                    n_frames += len(frames)
            if n_frames >= batch or len(pending) >= 4 * batch:
                yield from flush()
        yield from flush()
