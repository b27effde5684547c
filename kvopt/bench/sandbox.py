"""Run one job of untrusted code in a separate, limited process.

The child (``kvopt/bench/child.py``) runs in its own session (process group) with

* a wall-clock timeout: on expiry the whole process group is killed (SIGKILL),
  so a program that forks or spawns threads cannot outlive it;
* an address-space limit (``RLIMIT_AS``) and an output-file limit (``RLIMIT_FSIZE``);
* stdout and stderr redirected to files, and the answer written to a separate
  file descriptor, so whatever the program prints cannot corrupt the answer;
* a clean environment: no ``PYTHON*`` variables from the caller, user site
  disabled (``-s``), the script's folder not on ``sys.path`` (``-P``), one BLAS
  thread, and ``PYTHONHASHSEED=0`` so set/dict iteration over strings, and so
  the program's answer, is the same on every run;
* a fresh temporary working directory, removed afterwards.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

CHILD_SCRIPT = Path(__file__).with_name("child.py")
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 2048
# Bounds the files a program can write (its captured stdout/stderr included).
OUTPUT_LIMIT_MB = 64
TAIL_CHARS = 2000


@dataclass(frozen=True)
class Limits:
    """Per-run limits: wall seconds, address space (MB; 0 = unlimited) and output size (MB)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    output_mb: int = OUTPUT_LIMIT_MB


@dataclass(frozen=True)
class ChildRun:
    """What came back from one child process.

    ``answer`` is the decoded answer channel (``None`` when the child wrote
    nothing); ``channel_error`` says why an answer could not be decoded;
    ``returncode`` is negative for death by signal.
    """

    answer: dict[str, Any] | None
    channel_error: str | None
    returncode: int | None
    timed_out: bool
    wall_seconds: float
    stdout_tail: str
    stderr_tail: str


def child_environment() -> dict[str, str]:
    """A minimal environment: no ``PYTHON*`` settings of the caller, deterministic hashing."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    return env


def apply_limits(memory_bytes: int, output_bytes: int) -> None:
    """Runs in the child between fork and exec: set hard and soft limits (the program cannot raise them)."""
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if output_bytes > 0:
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    # No core dumps of crashing programs.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def kill_group(pid: int) -> None:
    """SIGKILL the child's whole process group (it is the group leader); ignore if already gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_tail(path: Path, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of a captured stream (decoded leniently)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4 * chars))
        text = fh.read().decode("utf-8", errors="replace")
    return text[-chars:]


def decode_answer(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The child's answer, or ``(None, why)`` when the channel is empty or garbled."""
    if not raw:
        return None, None
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "the answer channel held invalid data"
    if not isinstance(answer, dict) or "ok" not in answer:
        return None, "the answer channel held an unexpected object"
    return answer, None


def run_child(job: dict[str, Any], limits: Limits) -> ChildRun:
    """Run ``child.py`` on ``job`` (sent on stdin) under ``limits``; never raises for program faults."""
    memory_bytes = int(limits.memory_mb) << 20 if limits.memory_mb else 0
    output_bytes = int(limits.output_mb) << 20 if limits.output_mb else 0
    with tempfile.TemporaryDirectory(prefix="kvopt-run-") as tmp:
        folder = Path(tmp)
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job))
        work = folder / "work"
        work.mkdir()
        out_path, err_path, answer_path = folder / "stdout", folder / "stderr", folder / "answer"
        with job_path.open("rb") as stdin, out_path.open("wb") as stdout, err_path.open("wb") as stderr, \
                answer_path.open("w+b") as answer_file:
            answer_fd = answer_file.fileno()
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-s", "-P", str(CHILD_SCRIPT), str(answer_fd)],
                stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(answer_fd,), cwd=work,
                env=child_environment(), start_new_session=True, close_fds=True,
                preexec_fn=partial(apply_limits, memory_bytes, output_bytes),
            )
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Also reaps anything the program left running in its group.
                kill_group(proc.pid)
                proc.wait()
            wall = time.perf_counter() - start
            answer_file.seek(0)
            raw = answer_file.read()
        answer, channel_error = (None, None) if timed_out else decode_answer(raw)
        return ChildRun(answer=answer, channel_error=channel_error, returncode=proc.returncode,
                        timed_out=timed_out, wall_seconds=wall,
                        stdout_tail=read_tail(out_path), stderr_tail=read_tail(err_path))
