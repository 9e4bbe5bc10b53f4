"""`tumorlens serve`: the local web app and HTTP API (see `tumorlens.serve`). Wired into the CLI by `cli.py`
with `from .cli_serve import add_parsers as _serve_parsers; _serve_parsers(sub)`.

Also runnable on its own: `python -m tumorlens.cli_serve [--model CKPT] [--port 8000] ...`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .config import DISCLAIMER, TumorlensError


def cmd_serve(a: argparse.Namespace) -> int:
    from .serve import is_loopback, run_server

    if not 0 < a.max_upload_mb < float("inf"):  # NaN fails this too (it had passed `<= 0`: a traceback)
        raise TumorlensError(f"--max-upload-mb must be a positive number, got {a.max_upload_mb}")
    if not 0 < a.port < 65536:
        raise TumorlensError(f"--port must be 1-65535, got {a.port}")
    if not is_loopback(a.host):
        print(f"WARNING: serving on {a.host} makes tumorlens reachable from other machines on the network. "
              f"It has no authentication and no TLS, and people may upload medical images to it. Use the "
              f"default --host 127.0.0.1 unless this network is trusted. It answers only requests addressed to "
              f"{a.host}, localhost, 127.0.0.1 or [::1]; add the names others use with --allow-host.",
              file=sys.stderr)
    _check_port(a.host, a.port)
    print(f"tumorlens serve: {DISCLAIMER}", file=sys.stderr)
    host = f"[{a.host}]" if ":" in a.host else a.host
    print(f"loading the model, then serving on http://{host}:{a.port}/ (API description at /openapi.json; "
          f"Ctrl+C stops)", file=sys.stderr)
    run_server(a.model, host=a.host, port=a.port, max_upload_mb=a.max_upload_mb,
               log_level="info" if getattr(a, "verbose", False) else "warning", allow_hosts=list(a.allow_host))
    return 0


def _check_port(host: str, port: int) -> None:
    """A one-line error, before the model loads and before 'serving on ...' is printed, when the address cannot
    be listened on (in use, or not an address of this machine). The port is freed again at once; uvicorn binds
    it a moment later (another program could take it in between: uvicorn then reports that itself)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise TumorlensError(f"--host {host}: not an address of this machine ({e.strerror or e})") from None
    fam, _, _, _, addr = infos[0]
    with socket.socket(fam, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn sets it
        try:
            sock.bind(addr)
        except OSError as e:
            raise TumorlensError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                                 f"choose another --port") from None


def _add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; other addresses warn)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest request body in MiB (1 MiB = 1,048,576 bytes; default 20), all files of a "
                        "request together; larger uploads get HTTP 413")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name (or address) the server answers to besides localhost, 127.0.0.1, [::1] "
                        "and --host; repeatable. Requests addressed to any other name get HTTP 400 (a guard "
                        "against DNS rebinding)")
    s.set_defaults(func=cmd_serve)


def add_parsers(sub: Any) -> None:
    """Add `serve` to the `tumorlens` sub-command parser."""
    s = sub.add_parser("serve", help="run the local web app and HTTP API; research use only",
                       description=f"Serve the tumorlens web page and HTTP API (uploads stay in memory and are "
                                   f"never stored or logged). {DISCLAIMER}")
    _add_arguments(s)


def main(argv: list[str] | None = None) -> int:
    import logging

    p = argparse.ArgumentParser(prog="tumorlens-serve", description=f"tumorlens web app. {DISCLAIMER}")
    p.add_argument("-v", "--verbose", action="store_true", help="uvicorn's info messages on stderr")
    _add_arguments(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return cmd_serve(a)
    except TumorlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
