"""At call time, tries to keep state in the kernel or reach past the sandbox: a key in the user
keyring (the issue-17 attack), SysV shared memory, an IPv4 socket, a listening UNIX socket,
a new user namespace, ptrace.  If any of them works it drops a model, so the case is invalid."""
import ctypes
import os
import socket
import sys

from _base import MARKER, honest_placement

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEY_SPEC_USER_KEYRING = -4
SYS = {"x86_64": {"add_key": 248, "keyctl": 250, "shmget": 29, "ptrace": 101},
       "aarch64": {"add_key": 217, "keyctl": 219, "shmget": 194, "ptrace": 117}}[os.uname().machine]


def attempts():
    worked = []
    if libc.syscall(SYS["add_key"], b"user", MARKER.encode(), b"answers", 7, KEY_SPEC_USER_KEYRING) >= 0:
        worked.append("add_key")
    if libc.syscall(SYS["keyctl"], 0, KEY_SPEC_USER_KEYRING, 0) >= 0:  # KEYCTL_GET_KEYRING_ID
        worked.append("keyctl")
    if libc.syscall(SYS["shmget"], 0x4B56, 4096, 0o1666) >= 0:  # IPC_CREAT
        worked.append("shmget")
    if libc.syscall(SYS["ptrace"], 16, os.getppid(), 0, 0) >= 0:  # PTRACE_ATTACH
        worked.append("ptrace")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.socket(family, socket.SOCK_DGRAM).close()
            worked.append(f"socket {family}")
        except OSError:
            pass
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind("\0" + MARKER)
        server.listen(1)
        worked.append("listen")
    except OSError:
        pass
    if libc.unshare(0x10000000) == 0:  # CLONE_NEWUSER
        worked.append("unshare")
    return worked


def compute_model_placement(gpu_num, models):
    worked = attempts()
    placement = honest_placement(gpu_num, models)
    if worked:
        print("got through:", ", ".join(worked), file=sys.stderr)
        for gpu in placement:
            if placement[gpu]:
                placement[gpu] = placement[gpu][1:]
                break
    return placement
