"""Whole-tree limits for one sandboxed call: a control group per call (cgroup v2, else v1).

``RLIMIT_AS`` limits one process; a program that forks four children gets four
times the memory.  A control group limits the memory and the number of tasks of
the whole tree, and lets the evaluator kill the whole tree at once.  kvopt makes
one group per call below the group it runs in:

* cgroup v2 (one hierarchy) when the ``memory`` and ``pids`` controllers are
  delegated to it (enabled in our group's ``cgroup.subtree_control``);
* cgroup v1 (a hierarchy per controller: ``memory`` and ``pids``) where those are
  mounted and writable — as root on the CI machines;
* none otherwise: the caller falls back to per-process ``RLIMIT_AS`` plus
  ``RLIMIT_NPROC`` and says so in the results (``tree_limits: rlimit``).

Group names carry the evaluator's pid (``kvopt-<pid>-<n>``), so groups left by
an evaluator that was killed are found and removed at the next start
(``remove_stale``).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "kvopt-"
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where new groups go: ``parent`` folder, and which cgroup version it is."""

    version: int
    parent: Path
    controller: str  # "memory", "pids", "cpu", "cpuacct" (v1) or "" (v2: all in one folder)


def _mounts() -> list[tuple[str, str, str]]:
    """``(mount point, fs type, super options)`` from ``/proc/self/mountinfo``."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3:
            out.append((fields[4], rest[0], rest[2]))
    return out


def _own_groups() -> dict[str, str]:
    """``{controller or "": path}`` of this process, from ``/proc/self/cgroup``."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    return groups


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def find_hierarchies() -> tuple[Hierarchy, ...]:
    """The hierarchies to create call groups in: one v2 folder, or v1 memory + pids, or none."""
    mounts, groups = _mounts(), _own_groups()
    for point, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in groups:
            parent = Path(point + groups[""].rstrip("/"))
            try:
                enabled = (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if {"memory", "pids"} <= set(enabled) and _writable_dir(parent):
                return (Hierarchy(2, parent, ""),)
    found: list[Hierarchy] = []
    for controller in ("memory", "pids", "cpu", "cpuacct"):
        for point, fstype, options in mounts:
            if fstype == "cgroup" and controller in options.split(",") and controller in groups:
                parent = Path(point + groups[controller].rstrip("/"))
                # cpu and cpuacct are often one mount: one folder serves both.
                if _writable_dir(parent) and all(h.parent != parent for h in found):
                    found.append(Hierarchy(1, parent, controller))
                    break
    # memory and pids are required; CPU quota and accounting are used where present.
    return tuple(found) if {h.controller for h in found} >= {"memory", "pids"} else ()


@dataclass(frozen=True)
class CallGroup:
    """The control group(s) of one call: ``folders`` (one per hierarchy)."""

    folders: tuple[Path, ...]
    version: int

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so everything it starts later) into the group."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for folder in self.folders:
            try:
                out.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return out

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill`` where the kernel has it)."""
        for folder in self.folders:
            kill_file = folder / "cgroup.kill"
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                except OSError:
                    pass
        for _ in range(100):
            alive = self.pids()
            if not alive:
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process of the group so far (v2 ``cpu.stat``, v1 ``cpuacct.usage``)."""
        for folder in self.folders:
            try:
                if self.version == 2:
                    for line in (folder / "cpu.stat").read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
                elif (folder / "cpuacct.usage").exists():
                    return int((folder / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                continue
        return None

    def oom_killed(self) -> bool:
        """Whether the memory limit of the group was hit (the kernel killed or refused memory)."""
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (folder / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip() not in ("", "0"):
                        return True
            try:
                if int((folder / "memory.failcnt").read_text()) > 0:
                    return True
            except (OSError, ValueError):
                pass
        return False

    def remove(self) -> None:
        """Kill what is left and delete the group (a group with live tasks cannot be removed)."""
        self.kill()
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:
        if path.name not in ("memory.swap.max", "memory.memsw.limit_in_bytes"):  # swap knobs are optional
            raise


CPU_PERIOD_US = 100_000


def create_group(hierarchies: tuple[Hierarchy, ...], memory_bytes: int, max_tasks: int,
                 cpus: int | None = None) -> CallGroup:
    """A new group limited to ``memory_bytes`` (all processes together), ``max_tasks`` tasks and
    ``cpus`` CPUs of bandwidth (``cpu.max`` / ``cpu.cfs_quota_us``; where the controller is there)."""
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    folders = []
    try:
        for h in hierarchies:
            folder = h.parent / name
            folder.mkdir()
            folders.append(folder)
            if h.version == 2:
                _write(folder / "memory.max", str(memory_bytes))
                _write(folder / "memory.swap.max", "0")
                _write(folder / "pids.max", str(max_tasks))
                if cpus and (folder / "cpu.max").exists():
                    _write(folder / "cpu.max", f"{cpus * CPU_PERIOD_US} {CPU_PERIOD_US}")
            elif h.controller == "memory":
                _write(folder / "memory.limit_in_bytes", str(memory_bytes))
                _write(folder / "memory.memsw.limit_in_bytes", str(memory_bytes))
            elif h.controller == "pids":
                _write(folder / "pids.max", str(max_tasks))
            elif cpus and (folder / "cpu.cfs_quota_us").exists():
                _write(folder / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(folder / "cpu.cfs_quota_us", str(cpus * CPU_PERIOD_US))
    except OSError:
        CallGroup(tuple(folders), hierarchies[0].version).remove()
        raise
    return CallGroup(tuple(folders), hierarchies[0].version)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str, prefix: str) -> int | None:
    """The evaluator pid in a name ``<prefix><pid>-...``, or ``None``."""
    if not name.startswith(prefix):
        return None
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def remove_stale(hierarchies: tuple[Hierarchy, ...]) -> int:
    """Kill and remove the groups of evaluators that are gone; how many were removed."""
    removed = 0
    for h in hierarchies:
        try:
            entries = list(h.parent.iterdir())
        except OSError:
            continue
        for folder in entries:
            pid = owner_pid(folder.name, PREFIX)
            if folder.is_dir() and pid is not None and not pid_alive(pid):
                CallGroup((folder,), h.version).remove()
                removed += 1
    return removed
