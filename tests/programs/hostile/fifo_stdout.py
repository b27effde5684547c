"""Replaces the files behind its stdout, stderr and answer descriptors with FIFOs (a parent that reopens
them by path blocks forever), then behaves."""
import os

from _base import answer_fds, honest_placement


def compute_model_placement(gpu_num, models):
    for fd in [1, 2, *answer_fds()]:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
            os.unlink(path)
            os.mkfifo(path)
        except OSError:
            pass
    return honest_placement(gpu_num, models)
