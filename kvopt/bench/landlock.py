"""Landlock: the kernel's unprivileged sandbox, applied by a process to itself (standard library only).

The sandboxed child (``child.py``) calls ``restrict_self(work_dir)`` after it has
read its job and before it loads the user's program.  From then on that process
and everything it starts

* may write, create, delete, rename or truncate files only beneath ``work_dir``
  (reading and executing stay allowed: the filesystem is read-only anyway under
  bubblewrap, and Python must read its standard library);
* may not read or list the evaluators' call folders (``kvopt-run-*`` in the
  evaluator's temporary folder), when the caller names them — its own work
  folder and everything else stays readable;
* may not bind or connect TCP sockets (ABI ≥ 4);
* may not send signals to, or connect to abstract UNIX sockets of, processes
  outside its Landlock domain — the evaluator above all (ABI ≥ 6).

Landlock is a second layer under bubblewrap's namespaces, and the first layer
where user namespaces are missing.  Restrictions only ever add up: a program
cannot lift them (``no_new_privs`` is set, and Landlock has no undo).

The ABI numbers and constants are those of ``linux/landlock.h``; the three
system calls have the same numbers on every architecture (444–446).
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct

SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights that change something: (bit, first ABI that knows it).
WRITE_RIGHTS = (
    (1 << 1, 1),   # WRITE_FILE
    (1 << 4, 1),   # REMOVE_DIR
    (1 << 5, 1),   # REMOVE_FILE
    (1 << 6, 1),   # MAKE_CHAR
    (1 << 7, 1),   # MAKE_DIR
    (1 << 8, 1),   # MAKE_REG
    (1 << 9, 1),   # MAKE_SOCK
    (1 << 10, 1),  # MAKE_FIFO
    (1 << 11, 1),  # MAKE_BLOCK
    (1 << 12, 1),  # MAKE_SYM
    (1 << 13, 2),  # REFER (link/rename across folders)
    (1 << 14, 3),  # TRUNCATE
    (1 << 15, 5),  # IOCTL_DEV
)
READ_FILE = 1 << 2
READ_DIR = 1 << 3
NET_TCP_BIND_CONNECT = (1 << 0) | (1 << 1)  # ABI 4
SCOPE_ABSTRACT_UNIX_AND_SIGNAL = (1 << 0) | (1 << 1)  # ABI 6


class LandlockError(OSError):
    """Landlock is missing or refused the ruleset."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI (0 when Landlock is missing or disabled)."""
    try:
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        version = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def write_rights(abi: int) -> int:
    """The write-like filesystem rights this ABI can restrict."""
    mask = 0
    for bit, since in WRITE_RIGHTS:
        if abi >= since:
            mask |= bit
    return mask


def _add_path_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int, file_rights: int) -> None:
    """Allow ``rights`` beneath ``path`` (``file_rights`` when it is not a folder); skip what cannot be opened."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a dangling link, or gone: nothing to allow
    try:
        allowed = rights if stat.S_ISDIR(os.fstat(fd).st_mode) else file_rights
        rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd))
        if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), rule,
                        ctypes.c_uint32(0)) < 0:
            raise LandlockError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def readable_outside(folders: list[str], hidden_prefix: str) -> list[str]:
    """Paths that together make everything readable except the ``hidden_prefix*`` entries of ``folders``.

    Landlock only allows, never denies: so every sibling of every ancestor of
    the folders is allowed, and in each folder every entry but the hidden ones.
    Entries made later (another evaluator's call folders) are not allowed at all.
    """
    hidden = {os.path.realpath(f) for f in folders}
    on_the_way = {os.path.dirname(h) for h in hidden} | hidden
    for h in hidden:
        while h != "/":
            h = os.path.dirname(h)
            on_the_way.add(h)
    out: list[str] = []

    def walk(path: str) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            entry = os.path.join(path, name)
            # Rules hold for what a path resolves to: a link to a folder on the way (pytest's
            # "pytest-current") or into a hidden entry would allow it all.
            real = os.path.realpath(entry)
            if real in on_the_way:
                if real == entry:
                    walk(entry)
            elif not any(real.startswith(os.path.join(h, hidden_prefix)) for h in hidden):
                out.append(entry)

    walk("/")
    return out


def restrict_self(work_dir: str, hidden_folders: list[str] = (), hidden_prefix: str = "") -> int:
    """Confine this process (and its future children) as the module docstring says; returns the ABI used.

    With ``hidden_folders``, reading is confined too: their entries named
    ``hidden_prefix*`` (the evaluators' call folders)
    cannot be read or listed; everything else, and ``work_dir``, can.

    Raises ``LandlockError`` when the kernel has no Landlock or refuses a step:
    the caller must then not run untrusted code under a promise it cannot keep.
    """
    abi = abi_version()
    if abi < 1:
        raise LandlockError("Landlock is not available in this kernel")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    fs_rights = write_rights(abi)
    read_rights = READ_FILE | READ_DIR if hidden_folders else 0
    net_rights = NET_TCP_BIND_CONNECT if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_AND_SIGNAL if abi >= 6 else 0
    # struct landlock_ruleset_attr {u64 handled_access_fs, handled_access_net, scoped}: older ABIs
    # take only the leading fields they know.
    fields = [fs_rights | read_rights] + ([net_rights] if abi >= 4 else []) + ([scoped] if abi >= 6 else [])
    attr = ctypes.create_string_buffer(struct.pack(f"={len(fields)}Q", *fields))
    ruleset = libc.syscall(SYS_CREATE_RULESET, attr, ctypes.c_size_t(len(attr.raw)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise LandlockError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        if not os.path.isdir(work_dir):
            raise LandlockError(2, f"work folder {work_dir} is missing")
        _add_path_rule(libc, ruleset, work_dir, fs_rights | read_rights, 0)
        if hidden_folders:
            for path in readable_outside(list(hidden_folders), hidden_prefix):
                _add_path_rule(libc, ruleset, path, read_rights, READ_FILE)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise LandlockError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi
