"""Atomic file writes: a crash leaves either the old file or the complete new one, never half of one.

Every output of tumorlens (reports, CSVs, checkpoints, training state, cache entries) goes through
`atomic_write_bytes`, so there is one mechanism to get right. Its errors name the file the user asked for,
never the hidden temporary file beside it. `read_user_text` is the one way in for text a user hands us
(splits, group lists, configs), so every such file fails the same way: one line naming it.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .config import TumorlensError


def _file_mode() -> int:
    """Permissions for new files: 0o666 minus the umask, as open() would give (mkstemp gives 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()  # read once at import: os.umask is process-wide, so never toggle it later


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write `data` to a temporary file beside `path`, then `os.replace` it into place. Parent folders
    are created. fsync=False skips the flush to disk, for rebuildable data such as cache entries.

    An OSError comes out as the same kind of OSError with `filename` the target and `strerror` saying what
    failed ("cannot write (Permission denied)", "is a folder"), so the CLI's one-line error names the user's
    path and callers that tolerate OSError (the cache) still do."""
    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if kind == "special":
        # a device, FIFO or socket (/dev/null, /dev/stdout, a named pipe a reader waits on): written into as
        # it is, not replaced by a regular file (os.replace swapped /dev/null for a file; a helper's audit)
        return _write_special(path, data)
    if path.is_symlink():
        # write through the link: replacing it would turn the link into a file and leave its target stale
        path = path.resolve()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise type(e)(e.errno, f"cannot write ({e.strerror or e})", str(path)) from None
        raise
    return path


def _kind(path: Path) -> str | None:
    """'folder', 'file', 'special' (a device, FIFO or socket) or None (nothing there), links followed, in one
    stat."""
    import stat

    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "special"


def _write_special(path: Path, data: bytes) -> Path:
    """`data` written into an existing non-regular file (no atomic replace is possible, nor wanted)."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write ({e.strerror or e})", str(path)) from None
    return path


def file_target(value: str, option: str, inputs: tuple = (), not_inside: tuple = ()) -> str:
    """`value` of a command's single-file output option (`--out FILE`, `--split-out FILE`), refused when it ends
    with a path separator (`Path` drops that slash, so "reports/" would silently become a file named reports),
    when it is one of the command's `inputs` (model-card --out onto its own checkpoint destroyed it), or when it
    lies inside one of the `not_inside` folders (a dataset: a split CSV written into a class folder replaced an
    image, or becomes a file the next scan of the dataset trips over)."""
    if value.endswith(("/", os.sep)) or (os.altsep and value.endswith(os.altsep)):
        raise TumorlensError(f"{value}: {option} names a folder (it ends with a slash); give a file name")
    target = Path(value).resolve()
    for i in inputs:
        if i and Path(i).exists() and Path(i).resolve() == target:
            raise TumorlensError(f"{value}: {option} is also an input of this command; writing it would destroy "
                                 f"the input: choose another file")
    outside_of(value, option, not_inside)
    return value


def outside_of(value: str | os.PathLike, option: str, folders: tuple) -> None:
    """Refuse an output path `value` (of `option`) inside any of `folders` (datasets)."""
    target = Path(value).resolve()
    for d in folders:
        if d and Path(d).is_dir():
            root = Path(d).resolve()
            if target == root or root in target.parents:
                raise TumorlensError(f"{value}: {option} lies inside the dataset folder {d}; outputs there would be "
                                     f"read as part of the dataset: write them elsewhere")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_user_text(path: str | os.PathLike, what: str) -> str:
    """The text of an input file a user gave (`what` says which kind, for the error): UTF-8, with or without
    the byte-order mark that Excel's "CSV UTF-8" writes. Any other encoding (UTF-16, Latin-1, binary) or an
    unreadable file is a TumorlensError naming the file, not a UnicodeDecodeError traceback."""
    p = Path(path)
    try:
        if _kind(p) == "special":
            # /dev/zero read until memory ran out, and a FIFO without a writer hung (a helper's audit)
            raise TumorlensError(f"{path}: cannot read {what} (not a regular file: a device, pipe or socket)")
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TumorlensError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise TumorlensError(f"{path}: cannot read {what} ({e.strerror or e})") from None


class StagedFolder:
    """A set of output files that lands in `out` together: write them into `.stage` (a hidden folder inside
    `out`), then `publish()` moves each into place, in the order given, and removes the named outputs that this
    run did not produce. An interrupted run leaves `out` as it was (the stage is removed on exit), so a folder
    never mixes the files of two runs, e.g. a new metrics.json beside an old report.html. Files in `out` that
    are not named in `names` are never touched."""

    PREFIX = ".tumorlens-"

    def __init__(self, out: str | os.PathLike, names: list[str], folders: tuple[str, ...] = ()):
        self.out, self.names, self.folders = prepare_folder(out), list(names), tuple(folders)
        self._remove_stale_stages()
        try:
            self.stage = Path(tempfile.mkdtemp(prefix=self.PREFIX, dir=self.out))
            (self.stage / ".pid").write_text(str(os.getpid()))
        except OSError as e:
            raise TumorlensError(f"{self.out}: cannot write ({e.strerror or e})") from None

    def _remove_stale_stages(self) -> None:
        """Stages of earlier runs that were killed (SIGKILL, a power cut: no exit handler ran), known by a
        process id that no longer runs; a stage of a run still going is left alone."""
        import shutil

        for d in self.out.glob(self.PREFIX + "*"):
            try:
                pid: int | None = int((d / ".pid").read_text())
            except (OSError, ValueError):
                pid = None  # no pid file (a stage of an older tumorlens) or an unreadable one
            if pid is not None and _running(pid):
                continue  # that run is still going
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> "StagedFolder":
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        import shutil

        shutil.rmtree(self.stage, ignore_errors=True)
        # a write error names the file in `out` the user asked for, not the hidden stage (a full disk during
        # evaluate named `.tumorlens-xxxx/report.html`; a helper's audit)
        if isinstance(exc, OSError) and exc.filename and Path(exc.filename).is_relative_to(self.stage):
            shown = self.out / Path(exc.filename).relative_to(self.stage)
            raise type(exc)(exc.errno, exc.strerror, str(shown)) from None

    def publish(self) -> None:
        """Move the staged files into `out` (the last name last: list the file that marks a complete run last).
        A name may be a folder (localize's examples/): the earlier run's folder of that name is replaced whole."""
        import shutil

        for name in self.names:
            src, dst = self.stage / name, self.out / name
            try:
                if src.is_dir():
                    if dst.is_dir() and not dst.is_symlink():
                        shutil.rmtree(dst)
                    os.replace(src, dst)
                elif src.exists():
                    os.replace(src, dst)
                elif dst.is_file():
                    dst.unlink()  # an output of an earlier run that this run does not write
                elif dst.is_dir() and not dst.is_symlink() and name in self.folders:
                    shutil.rmtree(dst)
            except OSError as e:
                raise TumorlensError(f"{dst}: cannot write ({e.strerror or e})") from None


def _running(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts: it may be that run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def prepare_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create an output folder now, before a long run, so that an unwritable or impossible one (a file of
    that name, /proc/...) is a one-line error at once rather than after the dataset has been decoded."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TumorlensError(f"{path}: {option} must be a folder, and a file of that name exists")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TumorlensError(f"{path}: cannot create the {option} folder ({e.strerror or e})") from None
    return path
