"""Run one job of untrusted code in a contained, limited process, and read its answer safely.

Every call of a program (the first load, "probe", included) runs ``child.py``
under the run's ``Isolation`` (``kvopt.bench.isolation``): by default bubblewrap
namespaces (read-only filesystem, private tmpfs, no network, own PID namespace)
with Landlock inside, its whole process tree in a control group limited in memory
and tasks, plus per-process ``RLIMIT_AS``/``RLIMIT_FSIZE``/``RLIMIT_CORE``.

What the parent trusts, and why:

* **time** is measured here: from the child's "ready" byte (written by kvopt's
  own child code after the job is read, before the program is loaded) to the
  child's exit; a time the program reports is never used;
* **the answer** comes on its own file descriptor, read back from the parent's
  open file (never reopened by path), at most ``ANSWER_LIMIT_BYTES``, parsed with a
  nesting limit and with huge integers refused (``decode_answer``): anything
  malformed is that case's ``bad_output``, never an exception here;
* **stdout/stderr** go to files in a folder the program cannot see (bubblewrap)
  or write (Landlock), capped by ``RLIMIT_FSIZE``; only their tails are read.

Call folders are named ``kvopt-run-<evaluator pid>-…`` so that ``sweep_stale``
removes those of an evaluator that was killed.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from kvopt.bench import cgroups
from kvopt.bench.isolation import (SANDBOX_WORK, Isolation, bwrap_prefix, resolve_isolation,
                                   tree_hierarchies)
from kvopt.model import KvoptError

CHILD_SCRIPT = Path(__file__).with_name("child.py")
RUN_PREFIX = "kvopt-run-"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 2048
# Below this a Python interpreter with numpy does not start reliably.
MIN_MEMORY_MB = 256
# Bounds each file a program writes (its captured stdout/stderr included) and its tmpfs.
OUTPUT_LIMIT_MB = 64
# Processes and threads of one call, all together (cgroup pids.max / RLIMIT_NPROC headroom).
MAX_TASKS = 64
ANSWER_LIMIT_BYTES = 4 << 20
ANSWER_MAX_DEPTH = 32
TAIL_CHARS = 2000
PR_SET_PDEATHSIG = 1


def machine_memory_mb() -> int:
    """Physical memory of this machine in MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) >> 20


def check_limits(timeout_s: float, memory_mb: int) -> None:
    """``KvoptError`` naming the option unless ``timeout_s`` is finite and > 0 and ``memory_mb`` is sane."""
    if not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) or timeout_s <= 0:
        raise KvoptError(f"--timeout: must be a finite number of seconds > 0, got {timeout_s}")
    total = machine_memory_mb()
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or not MIN_MEMORY_MB <= memory_mb <= total:
        raise KvoptError(f"--memory-mb: must be a whole number from {MIN_MEMORY_MB} to this machine's "
                         f"{total} MB, got {memory_mb}")


@dataclass(frozen=True)
class Limits:
    """Per-call limits: wall seconds, memory of the whole call (MB), output size (MB), containment.

    ``isolation`` ``None`` means the strongest available (``resolve_isolation("auto")``).
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    output_mb: int = OUTPUT_LIMIT_MB
    isolation: Isolation | None = field(default=None)

    def __post_init__(self) -> None:
        check_limits(self.timeout_s, self.memory_mb)

    def resolved(self) -> Isolation:
        return self.isolation if self.isolation is not None else resolve_isolation("auto")


@dataclass(frozen=True)
class ChildRun:
    """What came back from one call.

    ``answer`` is the decoded answer channel (``None`` when the child wrote
    nothing); ``channel_error`` says why an answer could not be decoded;
    ``returncode`` is negative for death by signal; ``seconds`` is the parent's
    measure of the program's time (ready byte to exit); ``memory_exceeded`` says
    the call's control group hit its memory limit.
    """

    answer: dict[str, Any] | None
    channel_error: str | None
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout_tail: str
    stderr_tail: str
    memory_exceeded: bool = False


def child_environment(work_dir: str) -> dict[str, str]:
    """A minimal environment: no ``PYTHON*`` settings of the caller, deterministic hashing."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({
        "HOME": work_dir,
        "TMPDIR": work_dir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    return env


def user_process_count() -> int:
    """Processes of this real user now (``RLIMIT_NPROC`` counts them all, not just the call's)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def prepare_child(memory_bytes: int, output_bytes: int, nproc: int, group: cgroups.CallGroup | None) -> None:
    """Runs in the child between fork and exec: limits it cannot raise, its control group, death with us."""
    if group is not None:
        group.add(os.getpid())
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def kill_group(pid: int) -> None:
    """SIGKILL the child's whole process group (it is the group leader); ignore if already gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_tail(handle: IO[bytes], chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of a captured stream, from the parent's own open file."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 4 * chars))
    return handle.read(4 * chars).decode("utf-8", errors="replace")[-chars:]


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def decode_answer(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The child's answer, or ``(None, why)`` when the channel is empty, too large or garbled."""
    if not raw:
        return None, None
    if len(raw) > ANSWER_LIMIT_BYTES:
        return None, f"the answer channel held more than {ANSWER_LIMIT_BYTES >> 20} MB"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "the answer channel held invalid UTF-8"
    if nesting_depth(text) > ANSWER_MAX_DEPTH:
        return None, f"the answer channel held JSON nested deeper than {ANSWER_MAX_DEPTH}"
    try:
        answer = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # ValueError includes int digit limits and NaN/Infinity
        return None, "the answer channel held invalid JSON"
    if not isinstance(answer, dict) or answer.get("ok") not in (True, False):
        return None, "the answer channel held an unexpected object"
    return answer, None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def wait_for_exit(proc: subprocess.Popen, ready_fd: int, timeout_s: float) -> tuple[bool, float | None, float]:
    """``(timed_out, ready time, end time)`` (``time.perf_counter`` clock) of the child.

    Waits on the ready pipe and on a pidfd of the child together, so the parent
    notes both moments without polling.
    """
    start = time.perf_counter()
    deadline = start + timeout_s
    ready_at: float | None = None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    with selectors.DefaultSelector() as selector:
        selector.register(ready_fd, selectors.EVENT_READ, "ready")
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while True:
                if proc.poll() is not None:
                    return False, ready_at, time.perf_counter()
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return True, ready_at, time.perf_counter()
                wait_s = remaining if pidfd is not None else min(remaining, 0.005)
                for key, _ in selector.select(wait_s):
                    if key.data == "ready":
                        if ready_at is None:
                            ready_at = time.perf_counter()
                        # One byte is all kvopt's child writes; the pipe is done either way.
                        os.read(ready_fd, 1)
                        selector.unregister(ready_fd)
        finally:
            if pidfd is not None:
                os.close(pidfd)


def readable_paths(job: dict[str, Any]) -> list[str]:
    """What the program must be able to read: its file and the folders put on its ``sys.path``."""
    paths = list(job.get("sys_path", []))
    if job.get("kind") == "file":
        paths.append(job["target"])
    return paths


def child_command(isolation: Isolation, answer_fd: int, ready_fd: int, work_dir: str,
                  tmpfs_bytes: int, readable: list[str]) -> list[str]:
    """argv of one call: ``child.py`` under bubblewrap or directly (Landlock or nothing inside)."""
    landlock = "1" if isolation.landlock_abi and isolation.level != "none" else "0"
    if isolation.level == "namespaces":
        return [*bwrap_prefix(isolation.bwrap, tmpfs_bytes, readable), sys.executable, "-s", "-P", str(CHILD_SCRIPT),
                str(answer_fd), str(ready_fd), landlock, SANDBOX_WORK]
    return [sys.executable, "-s", "-P", str(CHILD_SCRIPT), str(answer_fd), str(ready_fd), landlock, work_dir]


def run_child(job: dict[str, Any], limits: Limits) -> ChildRun:
    """Run ``child.py`` on ``job`` (sent on stdin) under ``limits``; never raises for program faults."""
    isolation = limits.resolved()
    memory_bytes = int(limits.memory_mb) << 20
    output_bytes = int(limits.output_mb) << 20
    hierarchies = tree_hierarchies() if isolation.level != "none" else ()
    group = cgroups.create_group(hierarchies, memory_bytes, MAX_TASKS) if hierarchies else None
    nproc = 0 if group is not None or isolation.level == "none" else user_process_count() + MAX_TASKS
    folder = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))
    ready_read, ready_write = os.pipe()
    try:
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job))
        work = folder / "work"
        work.mkdir()
        with job_path.open("rb") as stdin, (folder / "stdout").open("w+b") as stdout, \
                (folder / "stderr").open("w+b") as stderr, (folder / "answer").open("w+b") as answer_file:
            answer_fd = answer_file.fileno()
            proc = subprocess.Popen(
                child_command(isolation, answer_fd, ready_write, str(work), output_bytes, readable_paths(job)),
                stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(answer_fd, ready_write), cwd=work,
                env=child_environment(str(work)), start_new_session=True, close_fds=True,
                preexec_fn=partial(prepare_child, memory_bytes, output_bytes, nproc, group),
            )
            os.close(ready_write)
            ready_write = -1
            try:
                timed_out, ready_at, end_at = wait_for_exit(proc, ready_read, limits.timeout_s)
            finally:
                # bwrap's PID namespace takes every process of the call with it; the group
                # and the session catch what a weaker level leaves.
                kill_group(proc.pid)
                if group is not None:
                    group.kill()
                proc.wait()
            start_at = ready_at if ready_at is not None else end_at
            answer_file.seek(0)
            raw = answer_file.read(ANSWER_LIMIT_BYTES + 1)
            answer, channel_error = (None, None) if timed_out else decode_answer(raw)
            return ChildRun(answer=answer, channel_error=channel_error, returncode=exit_code(proc, isolation),
                            timed_out=timed_out, seconds=max(0.0, end_at - start_at),
                            stdout_tail=read_tail(stdout), stderr_tail=read_tail(stderr),
                            memory_exceeded=group is not None and group.oom_killed())
    finally:
        if ready_write >= 0:
            os.close(ready_write)
        os.close(ready_read)
        if group is not None:
            group.remove()
        shutil.rmtree(folder, ignore_errors=True)


def exit_code(proc: subprocess.Popen, isolation: Isolation) -> int | None:
    """The child's exit code, negative for a signal; bubblewrap reports a signal ``s`` as ``128 + s``."""
    code = proc.returncode
    if isolation.level == "namespaces" and code is not None and 128 < code < 128 + 65:
        return -(code - 128)
    return code


def sweep_stale() -> None:
    """Remove what killed evaluators left behind: their call folders and control groups."""
    base = Path(tempfile.gettempdir())
    try:
        entries = list(base.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        pid = cgroups.owner_pid(entry.name, RUN_PREFIX)
        if pid is not None and entry.is_dir() and not cgroups.pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
    cgroups.remove_stale(tree_hierarchies())
