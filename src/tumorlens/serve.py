"""Local web app and HTTP API: `create_app()` builds it, `tumorlens serve` runs it with uvicorn.

Routes
------
* ``GET /`` - the page (``static/index.html``, ``app.css``, ``app.js``; no build step, no CDN, works offline).
* ``POST /api/predict`` - multipart field ``files`` (one or more). Answers a JSON list with the same records as
  ``tumorlens predict --format json`` (a DICOM or NIfTI file can give several). ``?explain=true`` adds, to each
  record with a heatmap, ``image_png`` (the slice as an 8-bit PNG), ``heatmap_png`` (the colour-mapped
  heatmap as a transparent RGBA layer of the same size) and ``overlay_png`` (the two blended), all base64,
  with ``heatmap_method`` (the model's default method, e.g. ``gated``) and ``heatmap_empty`` (true when the map
  found no evidence at all).
  ``?slice=k`` picks one NIfTI slice; when no upload is a NIfTI volume it is ignored, logged, and said in the
  response header ``X-Tumorlens-Note``.
* ``GET /api/health``, ``GET /api/model`` (versions, classes, metrics, sha256, preprocessing, calibration,
  abstention and refusal settings, disclaimer); the OpenAPI description at ``/openapi.json``. FastAPI's
  interactive ``/docs`` and ``/redoc`` pages load their scripts from a CDN, so they are off (the app works
  offline); ``/docs`` answers with a note pointing to ``/openapi.json``.

Privacy and safety
------------------
* Uploads stay in memory: the request body is read from the ASGI stream and parsed with python-multipart's
  streaming parser into ``bytearray`` buffers (Starlette's ``UploadFile`` would spool parts above 1 MB to a
  temporary file). Nothing from a request reaches a filesystem path: the page's files are read from the
  package once, when the app is built, and served from memory by fixed routes.
* Nothing about an upload is logged: the predictor sees a placeholder name (``upload-1.dcm``: the extension
  is kept because it tells the format), and the sanitised original name is put back into the response only.
  ``tumorlens serve`` runs uvicorn with its access log off.
* Limits: ``max_upload_mb`` MiB (default 20) per request, all files together, checked against Content-Length
  first and counted while the body streams -> 413; at most ``max_files`` file parts per request -> 413. A body
  that is not multipart/form-data -> 415; a single file that is not a supported image (PNG, JPEG, BMP, TIFF,
  ... that Pillow opens, DICOM, NIfTI) -> 415, an empty one -> 422 (among several files, such a file gets an
  ``error`` record and the rest are answered); no ``files`` field -> 422; a bad, repeated or unknown query
  parameter -> 422; a malformed body, one cut short included -> 400; an upload that sends nothing for
  ``BODY_IDLE_S`` seconds, or takes over ``BODY_TOTAL_S`` in all -> 408, connection closed. Every refusal is
  ``{"detail": "...", "disclaimer": "..."}``, the detail one line. A file of a supported format that fails to
  decode gives an ``error`` record, as in the CLI. Every PNG in an answer carries the disclaimer in a tEXt chunk.
* Host check: requests whose ``Host`` header names anything but localhost, 127.0.0.1, [::1], the address the
  server listens on and the names it was given (``--allow-host``) get 400, so that a web page on another
  site cannot reach the server by DNS rebinding.
* The multipart reading, the Host check and the one-line validation errors live in ``serve_http.py``.

The model is loaded once, when the app is built; predictions run one at a time (the Grad-CAM hooks live on
the shared model), PNG rendering of finished records runs beside them.
"""
from __future__ import annotations

import base64
import io
import logging
import re
import struct
import threading
import unicodedata
import zlib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .config import DISCLAIMER, TumorlensError
from .serve_http import MB, HostCheck, BodyError, allowed_host_names, read_multipart, validation_detail

log = logging.getLogger(__name__)

MAX_FILES = 64  # files per request
WORKERS = 2  # requests worked on at once (model calls still run one at a time): few threads, little memory
RENDER_MAX = 1024  # longest side of the PNG layers returned with ?explain=true (the heatmap is coarse anyway)
PNG_LEVEL = 1  # zlib level for the PNG layers: fastest; localhost traffic, size matters little
STATIC = {  # route -> (package file, media type); served from memory
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
_KNOWN_SUFFIX = re.compile(r"(\.nii\.gz|\.[A-Za-z0-9]{1,6})$", re.IGNORECASE)  # VOL.NII.GZ is a NIfTI too
QUERY_PARAMETERS = ("explain", "slice")
SLICE_NOTE = "slice applies to NIfTI volumes only; ignored"


# --------------------------------------------------------------------------------------- helpers
def safe_name(raw: str | None, index: int) -> str:
    """A file name fit to label a record: the last path component, printable, at most 120 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in "CZ" or ch == " ").strip()
    name = name.lstrip(".") or f"upload-{index}"
    if len(name) > 120:
        m = _KNOWN_SUFFIX.search(name)
        suffix = m.group(1) if m else ""
        name = name[:120 - len(suffix)] + suffix
    return name


def _placeholder(display: str, index: int) -> str:
    """The name the predictor (and so any log line) sees: `upload-<i>` plus the original extension."""
    m = _KNOWN_SUFFIX.search(display)
    return f"upload-{index}{m.group(1).lower() if m else ''}"


def sniff_supported(data: bytes | bytearray, name: str) -> bool:
    """True when `data` is a format the readers handle: DICOM, NIfTI, or an image Pillow identifies.

    A recognised image whose header is broken counts as supported: the reader then reports it as an
    `error` record, as the CLI does.
    """
    from PIL import Image, UnidentifiedImageError

    from .readers import _is_dicom, _nifti_kind

    head = bytes(data[:352])
    low = name.lower()
    if _is_dicom(head) or _nifti_kind(head, name) or low.endswith((".dcm", ".dicom")):
        return True
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except UnidentifiedImageError:
        pass
    except Exception:  # noqa: BLE001 - identified but broken (decompression bomb, bad header): reader's job
        return True
    if not Path(low).suffix:  # the reader tries DICOM without preamble for names without an extension
        from .readers_dicom import read_dicom

        try:
            read_dicom(bytes(data), name, force=True)
            return True
        except TumorlensError:
            return False
    return False


def _is_volume(data: bytes | bytearray, name: str) -> bool:
    """True when the readers will read this upload as a NIfTI volume (by its header, or its name)."""
    from .readers import _is_dicom, _nifti_kind

    head = bytes(data[:352])
    return not _is_dicom(head) and _nifti_kind(head, name) is not None


def _jet_lut() -> np.ndarray:
    """matplotlib's 'jet' colour map sampled at 256 levels (its segment data, without importing matplotlib)."""
    x = np.linspace(0.0, 1.0, 256)
    r = np.interp(x, [0, 0.35, 0.66, 0.89, 1], [0, 0, 1, 1, 0.5])
    g = np.interp(x, [0, 0.125, 0.375, 0.64, 0.91, 1], [0, 0, 1, 1, 0, 0])
    b = np.interp(x, [0, 0.11, 0.34, 0.65, 1], [0.5, 1, 1, 0, 0])
    return np.round(np.stack([r, g, b], 1) * 255).astype(np.uint8)


JET = _jet_lut()


def encode_png(a: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """uint8 (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA -> PNG bytes, written directly with zlib.

    Every row uses the PNG 'Up' filter (vectorised), which suits smooth heatmaps; at zlib level 1 this is
    about twice as fast as Pillow's encoder for the same size. The one metadata chunk is the disclaimer (tEXt,
    keyword "Disclaimer"), so that an image saved from the page or taken from the API still says it.
    """
    a = np.ascontiguousarray(a, dtype=np.uint8)
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[c]
    rows = a.reshape(h, w * c)
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up: each byte minus the byte above it (mod 256)
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
            + chunk(b"tEXt", b"Disclaimer\x00" + DISCLAIMER.encode("latin-1", "replace"))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + chunk(b"IEND", b""))


def _png_b64(a: np.ndarray) -> str:
    return base64.b64encode(encode_png(a)).decode("ascii")


def render_layers(image: np.ndarray, heat: np.ndarray, max_side: int = RENDER_MAX) -> dict[str, str]:
    """Slice and heatmap (same shape, original resolution) -> base64 PNGs: image, heatmap layer, overlay.

    The slice is windowed from its 0.5th to 99.5th percentile, as `explain.overlay_png` does. The heatmap
    layer is jet-coloured with alpha sqrt(heat) (cold regions transparent), so a page can lay it over the
    image and vary its opacity; the overlay blends it at half strength (as `overlay_png`). Images larger
    than `max_side` are scaled down.
    """
    from PIL import Image

    g = np.nan_to_num(np.asarray(image, dtype=np.float32))
    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(g, [0.5, 99.5]))
    g = np.clip((g - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(g)
    if max(g.shape) > max_side:
        s = max_side / max(g.shape)
        size = (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s)))
        g = np.asarray(Image.fromarray(g, "F").resize(size, Image.BILINEAR))
        h = np.clip(np.asarray(Image.fromarray(h, "F").resize(size, Image.BILINEAR)), 0.0, 1.0)
    g8 = (g * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    rgb = JET[(h * np.float32(255) + np.float32(0.5)).astype(np.uint8)]
    a = np.sqrt(h, dtype=np.float32)
    layer = np.empty(rgb.shape[:2] + (4,), np.uint8)
    layer[..., :3] = rgb
    layer[..., 3] = a * np.float32(255) + np.float32(0.5)
    w = (np.float32(0.5) * a)[..., None]
    over = (g8[..., None] + w * (rgb - g8[..., None].astype(np.float32)) + np.float32(0.5)).astype(np.uint8)
    return {"overlay_png": _png_b64(over), "image_png": _png_b64(g8), "heatmap_png": _png_b64(layer)}


def _small(obj: Any, max_list: int = 64) -> Any:
    """JSON metadata without long arrays (feature statistics, curves): lists longer than max_list drop out."""
    if isinstance(obj, dict):
        return {k: _small(v, max_list) for k, v in obj.items()
                if not (isinstance(v, list) and len(v) > max_list)}
    if isinstance(obj, list):
        return [_small(v, max_list) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------- app
class _Service:
    """The loaded predictor, its lock, and the work of one predict request (run in a worker thread)."""

    def __init__(self, predictor: Any):
        self.predictor = predictor
        self.lock = threading.Lock()

    def predict(self, uploads: list[tuple[str, bytearray, tuple[int, str] | None]], explain: bool,
                slice: int | None) -> list[dict]:
        """Records for each upload; one marked bad (empty or not an image: (status, reason)) gets an error record."""
        from .explain import heatmap_is_empty
        from .predict import Record

        out: list[dict[str, Any]] = []
        for i, (display, data, bad) in enumerate(uploads, 1):
            if bad:
                out.append({**Record(display, "error", reason=bad[1]).to_dict(), "disclaimer": DISCLAIMER})
                continue
            hidden = _placeholder(display, i)
            with self.lock:
                recs = self.predictor.predict_bytes(data, hidden, explain=explain, slice=slice)
            for r in recs:
                d = r.to_dict()
                d["path"] = display
                if d.get("reason"):
                    d["reason"] = d["reason"].replace(hidden, display)
                if explain and r.heatmap is not None and r.image is not None:
                    d.update(render_layers(r.image, r.heatmap))
                    # as the CLI's records say: which method made the map, and whether it found anything at all
                    d.update(heatmap_method=self.predictor.heatmap_method, heatmap_empty=heatmap_is_empty(r.heatmap))
                # each record carries the notice, as the CLI's JSON records do: a saved response body had it only
                # in a header (a helper's audit)
                d["disclaimer"] = DISCLAIMER
                out.append(d)
        return out

    def model_info(self, max_upload_mb: float, max_files: int) -> dict[str, Any]:
        p = self.predictor
        ck = p.ckpt
        meta = ck.meta
        refusal = dict(meta.get("refusal") or {})
        ood = refusal.pop("ood", None)
        look = refusal.pop("lookalike", None)
        metrics = {k: _small(meta[k]) for k in ("test_metrics", "metrics") if isinstance(meta.get(k), dict)}
        if "val_accuracy" in meta:
            metrics["val_accuracy"] = meta["val_accuracy"]
            metrics["best_epoch"] = meta.get("best_epoch")
        return {
            "disclaimer": DISCLAIMER,
            "version": __version__,
            "model": {"file": ck.path.name if ck.path else None, "sha256": ck.sha256,
                      "format": meta.get("format"), "trained_with": meta.get("versions", {}),
                      "architecture": ck.config.to_dict().get("model"), "data": meta.get("data", {}),
                      "split_strategy": (meta.get("split") or {}).get("strategy")},
            "sha256": ck.sha256,
            "classes": list(p.classes),
            "metrics": metrics,
            "preprocessing": p.pre.to_dict(),
            "calibration": meta.get("calibration") or {"temperature": 1.0, "fitted_on": None},
            "abstention": meta.get("abstention") or {"threshold": p.threshold},
            "refusal": {"enabled": bool(p.refuse), **_small(refusal),
                        "feature_distance": None if not ood else _small({k: v for k, v in ood.items()
                                                                         if k not in ("means", "basis", "lam")}),
                        "lookalike": None if not look else _small({k: v for k, v in look.items()
                                                                   if k not in ("mean", "scale", "w")})},
            "explain": {"method": p.heatmap_method, "target": "predicted class"},
            "limits": {"max_upload_mb": max_upload_mb, "max_files": max_files, "render_max_side": RENDER_MAX},
        }


def _static_files() -> dict[str, tuple[bytes, str]]:
    root = resources.files("tumorlens") / "static"
    return {route: (root.joinpath(fname).read_bytes(), media) for route, (fname, media) in STATIC.items()}


_PREDICT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                             "description": "PNG, JPEG, BMP, TIFF, DICOM or NIfTI files"}}}}}}}


def create_app(predictor_or_ckpt_path: Any = None, max_upload_mb: float = 20, max_files: int = MAX_FILES,
               allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The FastAPI app. `predictor_or_ckpt_path`: a `Predictor`, a checkpoint path, or None (bundled model).

    `allowed_hosts`: Host header names answered besides localhost, 127.0.0.1 and [::1] (`run_server` adds the
    address it listens on; tests add TestClient's "testserver"). The model is loaded here, once; a missing or
    broken checkpoint raises TumorlensError before serving.
    """
    from .predict import Predictor

    predictor = (predictor_or_ckpt_path if isinstance(predictor_or_ckpt_path, Predictor)
                 else Predictor(predictor_or_ckpt_path))
    if not 0 < max_upload_mb < float("inf"):
        raise TumorlensError(f"max upload size must be a positive number, got {max_upload_mb} MB")
    limit = int(max_upload_mb * MB)
    service = _Service(predictor)
    limiter = anyio.CapacityLimiter(WORKERS)
    pages = _static_files()
    info = service.model_info(max_upload_mb, max_files)

    app = FastAPI(title="tumorlens", version=__version__, docs_url=None, redoc_url=None,
                  description=f"**{DISCLAIMER}** Brain-tumour MRI slice classification with Grad-CAM heatmaps. "
                              f"Uploads are processed in memory and never stored.")
    app.state.service = service
    app.add_middleware(HostCheck, allowed=allowed_host_names(allowed_hosts))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors()), "disclaimer": DISCLAIMER}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own handler, plus the disclaimer: every body a person may read says it (404s and 405s too)
        return JSONResponse({"detail": exc.detail, "disclaimer": DISCLAIMER}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/api/"):
            h["Cache-Control"] = "no-store"
            h["X-Research-Use"] = DISCLAIMER
        return response

    def _page(route: str):
        body, media = pages[route]

        async def serve_page() -> Response:
            return Response(body, media_type=media, headers={
                "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY", "Cache-Control": "no-cache"})
        return serve_page

    for route in pages:
        app.add_api_route(route, _page(route), methods=["GET", "HEAD"], include_in_schema=False)

    @app.get("/api/health", summary="liveness and the disclaimer")
    async def health() -> dict[str, Any]:
        import torch

        return {"status": "ok", "model_loaded": True, "sha256": info["sha256"], "version": __version__,
                "torch_threads": torch.get_num_threads(), "disclaimer": DISCLAIMER}

    @app.get("/api/model", summary="the loaded model: versions, classes, metrics, settings")
    async def model() -> dict[str, Any]:
        return info

    async def docs_note() -> dict[str, str]:
        return {"note": "The interactive API docs (Swagger UI, ReDoc) are off: they load their scripts from a "
                        "CDN, and tumorlens works offline. The OpenAPI description of the API is at "
                        "/openapi.json.", "openapi": "/openapi.json", "disclaimer": DISCLAIMER}

    for route in ("/docs", "/redoc"):
        app.add_api_route(route, docs_note, methods=["GET"], include_in_schema=False)

    @app.post("/api/predict", summary="classify uploaded slices; ?explain=true adds Grad-CAM PNG layers",
              openapi_extra=_PREDICT_BODY,
              responses={413: {"description": "upload too large or too many files"},
                         415: {"description": "not multipart, or a single file that is not a supported image "
                                               "(in a batch such a file gets an error record)"},
                         422: {"description": "no 'files' field, a single empty file, or a bad, repeated or "
                                               "unknown query parameter"}})
    async def predict(request: Request, explain: bool = False, slice: int | None = None) -> JSONResponse:
        unknown = sorted(set(request.query_params) - set(QUERY_PARAMETERS))
        if unknown:  # a typo such as ?Explain=true would otherwise drop the heatmaps without a word
            # quoted and cut as values are (validation_detail): a name is the client's text, newlines included
            raise HTTPException(422, f"{unknown[0][:40]!r}: unknown query parameter; this endpoint takes "
                                     f"{' and '.join(QUERY_PARAMETERS)}")
        for key in QUERY_PARAMETERS:
            n = len(request.query_params.getlist(key))
            if n > 1:
                raise HTTPException(422, f"{key}: given {n} times; give it once")
        if slice is not None and slice < 0:
            raise HTTPException(422, f"slice: must be 0 or more, got {slice}")
        try:
            parts = await read_multipart(request, limit, max_files)
        except BodyError as e:
            # a stalled upload may still be arriving: the connection is closed rather than kept for another request
            raise HTTPException(e.status, e.detail, headers={"Connection": "close"} if e.status == 408 else None) \
                from None
        uploads: list[tuple[str, bytearray, tuple[int, str] | None]] = []  # name, data, (status, why) if bad
        for field, fname, data in parts:
            if field != "files":
                continue
            name = safe_name(fname, len(uploads) + 1)
            bad = None
            if not data:
                bad = (422, f"{name}: empty file (0 bytes)")
            elif not sniff_supported(data, name):
                bad = (415, f"{name}: not a supported image; send PNG, JPEG, BMP, TIFF, DICOM (.dcm) or NIfTI "
                            f"(.nii, .nii.gz) files")
            uploads.append((name, data, bad))
        if not uploads:
            raise HTTPException(422, "no files: send one or more files in the multipart field 'files'")
        if len(uploads) == 1 and uploads[0][2]:
            # one file, and it is not an image: the request itself is wrong. In a batch the bad file gets an
            # error record and the others are answered, as `tumorlens predict` does with a folder
            raise HTTPException(*uploads[0][2])
        headers = {}
        if slice is not None and not any(_is_volume(data, name) for name, data, bad in uploads if not bad):
            # as `tumorlens predict --slice` does; the answer keeps its shape, the note goes in a header
            log.warning("slice %s applies to NIfTI volumes only, and no upload is one: ignored", slice)
            headers["X-Tumorlens-Note"] = SLICE_NOTE
        try:
            records = await anyio.to_thread.run_sync(service.predict, uploads, explain, slice, limiter=limiter)
        except Exception as e:  # noqa: BLE001 - log the kind only: messages can carry upload details
            log.error("prediction failed (%s)", type(e).__name__)
            raise HTTPException(500, "prediction failed: internal error") from None
        return JSONResponse(records, headers=headers)

    return app


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(model: str | None = None, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20,
               log_level: str = "info", allow_hosts: Iterable[str] = ()) -> None:
    """Load the model, then serve with uvicorn (access log off: request lines are not logged). Requests are
    answered under localhost, 127.0.0.1, [::1], `host` and the names in `allow_hosts` (see `HostCheck`)."""
    import uvicorn

    app = create_app(model, max_upload_mb=max_upload_mb, allowed_hosts=[host, *allow_hosts])
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False, log_level=log_level)
