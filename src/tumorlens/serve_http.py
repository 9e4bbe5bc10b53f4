"""HTTP plumbing of the web app (serve.py): the multipart body read in memory with its limits, the Host check
against DNS rebinding, and FastAPI's validation errors as one line. Kept apart from serve.py, which holds the
app, its routes and the rendering of answers.

Research use only - not a medical device.
"""
from __future__ import annotations

from typing import Any, Iterable

from fastapi.responses import JSONResponse
from starlette.requests import Request

from .config import DISCLAIMER

MB = 1024 * 1024
# an upload that sends nothing for this long is dropped (408): twenty clients that stopped halfway through 19 MiB
# uploads held 400 MB of the server's memory for as long as they kept their connections open (a helper's audit)
BODY_IDLE_S = 30.0
# and one that takes longer than this in all (a client sending a byte now and then, under the idle limit); 20 MiB
# at 1 Mbit/s takes under 3 minutes
BODY_TOTAL_S = 600.0
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # Host header names always answered


# ------------------------------------------------------------------------------ multipart, in memory
class BodyError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def too_large(limit: int, size: int | None = None) -> str:
    """The 413 message: the size sent (when known) and the limit, in bytes, per request."""
    per = f"{limit:,} bytes ({limit / MB:.4g} MiB) per request, all files together"
    return f"upload too large: {size:,} bytes; the limit is {per}" if size is not None else \
        f"upload too large: over the limit of {per}"


def _part_names(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    """(field name, file name or None) from a part's Content-Disposition header."""
    from python_multipart.multipart import parse_options_header

    _, opts = parse_options_header(headers.get(b"content-disposition", b"").decode("latin-1"))
    field, fname = opts.get(b"name", b""), opts.get(b"filename")
    return field.decode("utf-8", "replace"), None if fname is None else fname.decode("utf-8", "replace")


async def read_multipart(request: Request, limit: int, max_files: int) -> list[tuple[str, str | None, bytearray]]:
    """(field name, file name or None, content) of each part of a multipart/form-data request, in memory.

    Raises BodyError: 415 not multipart; 400 malformed, including a body that ends inside a part or without
    its closing boundary (python-multipart's `finalize()` does not check that, and the parts before the cut
    would otherwise be answered as if they were all); 413 over `limit` bytes, or more than `max_files` file
    parts (parts with a file name or in the field 'files'; other form fields do not count).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
    from starlette.requests import ClientDisconnect

    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data":
        raise BodyError(415, "send the images as multipart/form-data, in the field 'files'")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BodyError(400, "multipart/form-data body without a boundary")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BodyError(400, "invalid Content-Length header") from None
        if n > limit:
            raise BodyError(413, too_large(limit, n))

    parts: list[tuple[str, str | None, bytearray]] = []
    cur: dict[str, Any] = {}
    n_files = 0

    def on_part_begin() -> None:
        cur.clear()
        cur.update(headers={}, field=bytearray(), value=bytearray(), data=bytearray())

    def on_headers_finished() -> None:
        nonlocal n_files
        cur["names"] = field, fname = _part_names(cur["headers"])
        if fname is not None or field == "files":
            n_files += 1
            if n_files > max_files:
                raise BodyError(413, f"too many files: at most {max_files} per request")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        cur["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        cur["value"] += data[start:end]

    def on_header_end() -> None:
        cur["headers"][bytes(cur["field"]).lower()] = bytes(cur["value"])
        cur["field"], cur["value"] = bytearray(), bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        cur["data"] += data[start:end]

    def on_part_end() -> None:
        field, fname = cur["names"]
        parts.append((field, fname, cur["data"]))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    import anyio

    received = 0
    chunks = request.stream().__aiter__()
    deadline = anyio.current_time() + BODY_TOTAL_S
    try:
        while True:
            left = deadline - anyio.current_time()
            try:
                with anyio.fail_after(max(0.0, min(BODY_IDLE_S, left))):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyError(408, f"the upload stalled: nothing received for {BODY_IDLE_S:g} s" if left > BODY_IDLE_S
                                else f"the upload took longer than {BODY_TOTAL_S:g} s") from None
            received += len(chunk)
            if received > limit:
                raise BodyError(413, too_large(limit))
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise BodyError(400, "malformed multipart/form-data body") from None
    except ClientDisconnect:
        raise BodyError(400, "the client went away before the upload was complete") from None
    if parser.state != MultipartState.END:  # END: the closing boundary was read (an epilogue after it is ignored)
        raise BodyError(400, "malformed multipart/form-data body (it ends inside a part or without its "
                              "closing boundary)")
    return parts


# ------------------------------------------------------------------------------------ host, queries
def _host_name(value: str | None) -> str | None:
    """The host of a Host header, lower case, without its port and final dot ('[::1]' keeps its brackets);
    None when there is none or it cannot be read."""
    v = (value or "").strip().lower()
    if v.startswith("["):
        end = v.find("]")
        rest = v[end + 1:]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return v[:end + 1]
    host, _, port = v.partition(":")
    if not host or ":" in port or (port and not port.isdigit()):
        return None
    return host.rstrip(".") or None


def allowed_host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header names answered: `LOOPBACK_HOSTS` plus `extra` (an IPv6 address gets its brackets)."""
    names = set(LOOPBACK_HOSTS)
    for h in extra:
        h = h.strip().lower().rstrip(".")
        if h:
            names.add(f"[{h}]" if ":" in h and not h.startswith("[") else h)
    return frozenset(names)


class HostCheck:
    """ASGI middleware: 400 `{"detail": ...}` for a request whose Host header is not an allowed name.

    A page on any web site can make the browser send requests to a name that its DNS points at 127.0.0.1
    (DNS rebinding); those requests carry that name in the Host header, so answering only known names keeps
    such pages from uploading to this server or reading its answers. Starlette's TrustedHostMiddleware does
    the same but answers in plain text; this keeps the API's JSON error shape.
    """

    def __init__(self, app: Any, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            from starlette.datastructures import Headers

            raw = Headers(scope=scope).get("host")
            if _host_name(raw) not in self.allowed:
                shown = repr(raw[:100]) if raw else "(none)"
                detail = (f"host {shown} is not allowed: this server answers to {', '.join(sorted(self.allowed))} "
                          f"only (a guard against DNS rebinding); start it with --allow-host NAME to add a name")
                await JSONResponse({"detail": detail, "disclaimer": DISCLAIMER}, status_code=400)(scope, receive,
                                                                                                  send)
                return
        await self.app(scope, receive, send)


_PLAIN = {"int_parsing": "must be an integer", "int_from_float": "must be an integer",
          "bool_parsing": "must be true or false", "missing": "is required"}


def validation_detail(errors: Iterable[dict[str, Any]]) -> str:
    """FastAPI's list of validation errors as one line: "slice: must be an integer, got 'abc'"; several are
    joined with "; "."""
    out = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "header", "body", "cookie")]
        what = _PLAIN.get(e.get("type", ""), str(e.get("msg", "invalid value")).replace("\n", " "))
        got = e.get("input")
        shown = f", got {got[:40]!r}" if isinstance(got, str) else ""
        out.append(f"{'.'.join(loc) or 'request'}: {what}{shown}")
    return "; ".join(out) or "invalid request"
