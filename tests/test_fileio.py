"""fileio: outputs to special files and symlinks, and user text files that are not regular files."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from tumorlens.config import TumorlensError
from tumorlens.fileio import atomic_write_bytes, read_user_text


def test_writing_to_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_writing_to_a_named_pipe_feeds_its_reader_and_leaves_a_pipe(tmp_path):
    """os.replace swapped a FIFO (and /dev/null) for a regular file; its reader got nothing (a helper's audit)."""
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_bytes(fifo, b"path,label\n")
    reader.join(timeout=10)
    assert got == [b"path,label\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_given_as_a_text_input_is_one_error_not_a_read_until_memory_runs_out():
    with pytest.raises(TumorlensError, match=r"^/dev/zero: cannot read split file \(not a regular file"):
        read_user_text("/dev/zero", "split file")


def test_a_write_error_inside_a_staged_folder_names_the_output_not_the_stage(tmp_path):
    import errno

    from tumorlens.fileio import StagedFolder

    with pytest.raises(OSError) as e:
        with StagedFolder(tmp_path / "report", ["a.txt"]) as stage:
            raise OSError(errno.ENOSPC, "cannot write (No space left on device)", str(stage.stage / "a.txt"))
    assert e.value.filename == str(tmp_path / "report" / "a.txt") and ".tumorlens-" not in str(e.value)
    assert not [p for p in (tmp_path / "report").iterdir()]  # the stage is gone
