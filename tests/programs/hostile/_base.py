"""Shared by the hostile fixtures: the honest greedy they return after their attack, and the marker.

Every attack is harmless if it succeeds (it appends or writes the MARKER text, it
does not destroy anything), so a containment failure shows up as a changed hash
in the tests, not as damage.
"""
import os
import sys

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _greedy_core import greedy  # noqa: E402

MARKER = "kvopt-hostile-marker"


def honest_placement(gpu_num, models):
    return greedy(gpu_num, models, globals().get("GPU_MEM_SIZE", 80))


def try_write(path, text, mode="a"):
    """Attempt a write; report nothing (the tests check what changed on disk)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, mode) as handle:
            handle.write(text)
    except OSError:
        pass


def answer_fds():
    """The descriptors a kvopt child may use for its answer: every open fd above stderr."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        if name.isdigit() and int(name) > 2:
            fds.append(int(name))
    return fds


def write_to_answer_fds(data):
    """Write ``data`` to every descriptor that may be the answer channel."""
    for fd in answer_fds():
        try:
            os.write(fd, data)
        except OSError:
            pass
