"""`kill PID` (SIGTERM) ends a command as Ctrl-C does: its worker processes end with it, exit code 143."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for child processes")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_sigterm_while_a_dataset_is_decoded_ends_the_workers_too(tmp_path):
    """The decode pool's workers outlived a `kill`ed audit, split or train for good (and held its stderr open,
    so a caller waiting for the pipe hung; a helper's audit)."""
    from tumorlens.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", n_per_class=120, size=384)  # 480 images: the pool starts at 256
    env = {**os.environ, "TUMORLENS_CACHE_DIR": str(tmp_path / "cache")}  # a cold cache: workers decode
    p = subprocess.Popen([sys.executable, "-m", "tumorlens", "audit", str(data), "--out", str(tmp_path / "a")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not _children(p.pid) and p.poll() is None and time.time() - t0 < 60:
        time.sleep(0.02)
    kids = _children(p.pid)
    if not kids:
        p.kill()
        pytest.skip("the audit finished before its worker processes could be seen")
    os.kill(p.pid, signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        raise AssertionError("the command or its workers did not end after SIGTERM")
    deadline = time.time() + 10
    while any(_alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)]
    if p.returncode == 0:  # on a busy machine the audit can finish between seeing its workers and the signal
        pytest.skip("the audit finished before SIGTERM arrived")
    assert p.returncode == 143 and err.decode().strip().splitlines()[-1] == "terminated (SIGTERM)"
