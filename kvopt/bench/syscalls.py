"""Kernel-level confinement of a sandboxed child: no capabilities, its own keyring, a seccomp filter.

Loaded by path from ``child.py`` (no kvopt import: the child must start fast),
and run after Landlock and before the first byte of the user's program:

* ``drop_capabilities``: the bounding set, the ambient set and the effective,
  permitted and inheritable sets are emptied (bubblewrap's ``--cap-drop ALL``
  does the same under namespaces; this is the same guarantee at every level);
* ``join_new_session_keyring``: the call gets an anonymous session keyring of its
  own, so even a key call that got through could not reach the evaluator's;
* ``install_filter``: a seccomp filter built with libseccomp (``pyseccomp``)
  that makes the system calls a placement program never needs fail with
  ``EPERM`` (``DENIED``), all sockets but ``AF_UNIX`` fail, ``bind``/``listen``
  fail (no rendezvous between calls), namespace flags on ``clone`` fail, and
  ``clone3`` answers ``ENOSYS`` (its flags sit in memory a filter cannot read;
  glibc then falls back to ``clone``).  The filter is inherited by every process
  the program starts and cannot be removed.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import sys
import types

# Kernel keyrings, tracing, other processes' memory, mounts, namespaces, BPF,
# perf, userfaultfd, kernel modules and kexec, SysV IPC (outlives a call where
# there is no IPC namespace), io_uring (its operations bypass seccomp), reboot,
# swap, clocks, accounting, quotas, handle-based opens.
DENIED = (
    "keyctl", "add_key", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "bpf", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semctl", "semtimedop", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
    "mq_getsetattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "reboot", "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct",
    "quotactl", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "syslog", "vhangup",
    "iopl", "ioperm", "personality", "nfsservctl", "uselib",
)
AF_UNIX = 1
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
                   0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
KEYCTL_JOIN_SESSION_KEYRING = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_LAST = 63
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def drop_capabilities() -> None:
    """Empty every capability set of this process (and so of what it executes); raises ``OSError``."""
    libc = _libc()
    for cap in range(CAP_LAST + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last cap; EPERM when none held
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("CapEff:", "CapPrm:", "CapBnd:")) and int(line.split()[1], 16) != 0:
                raise OSError(errno.EPERM, f"capabilities still held ({line.strip()})")


def join_new_session_keyring(seccomp) -> None:
    """``keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)``: an anonymous session keyring for this call."""
    number = seccomp.resolve_syscall(seccomp.system_arch(), "keyctl")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(number), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), None) < 0:
        raise OSError(ctypes.get_errno(), "keyctl(JOIN_SESSION_KEYRING) failed")


def build_filter(seccomp):
    """The filter of the module docstring (not loaded yet)."""
    deny = seccomp.ERRNO(errno.EPERM)
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED:
        try:
            flt.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a system call on this architecture
    flt.add_rule(deny, "socket", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    flt.add_rule(deny, "bind")
    flt.add_rule(deny, "listen")
    for flag in NAMESPACE_FLAGS:
        flt.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    flt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return flt


@functools.lru_cache(maxsize=None)  # a machine property; the lookup runs ldconfig
def libraries() -> str:
    """``libseccomp:libc`` sonames as this machine's loader knows them (found once, by the parent)."""
    import ctypes.util

    seccomp_lib, libc = ctypes.util.find_library("seccomp"), ctypes.util.find_library("c")
    if not seccomp_lib or not libc:
        raise OSError(errno.ENOENT, "libseccomp not found")
    return f"{seccomp_lib}:{libc}"


def import_pyseccomp(libs: str = ""):
    """``pyseccomp``, told the library names the parent found (its own lookup runs ``ldconfig``:
    slow per call, and not possible once the call is confined)."""
    if libs and "pyseccomp" not in sys.modules:
        known = dict(zip(("seccomp", "c"), libs.split(":")))
        if "ctypes.util" in sys.modules:
            lookup = sys.modules["ctypes.util"].find_library
            sys.modules["ctypes.util"].find_library = lambda name: known.get(name) or lookup(name)
            try:
                import pyseccomp
            finally:
                sys.modules["ctypes.util"].find_library = lookup
        else:
            # pyseccomp uses ctypes.util only for find_library at import: a stand-in spares every call
            # importing ctypes.util (subprocess, shutil, re: 30 ms); the real one loads if the program asks.
            stand_in = types.ModuleType("ctypes.util")
            stand_in.find_library = known.get
            sys.modules["ctypes.util"], ctypes.util = stand_in, stand_in
            try:
                import pyseccomp
            finally:
                del sys.modules["ctypes.util"]
                del ctypes.util
    import pyseccomp

    return pyseccomp


def confine_syscalls(libs: str = "") -> None:
    """Own keyring, then the filter (which denies ``keyctl`` from then on)."""
    pyseccomp = import_pyseccomp(libs)

    join_new_session_keyring(pyseccomp)
    build_filter(pyseccomp).load()


@functools.lru_cache(maxsize=None)
def available() -> str | None:
    """``None`` when a filter can be built here, else why not (for the recorded isolation level)."""
    try:
        build_filter(import_pyseccomp(libraries()))
    except Exception as exc:  # noqa: BLE001 - missing package or libseccomp
        return f"seccomp filter unavailable ({type(exc).__name__}: {exc})"
    return None
