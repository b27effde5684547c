"""Stops and kills its parent and grandparent (the evaluator is one getppid() away), then behaves."""
import os
import signal

from _base import honest_placement


def ancestors():
    pid, out = os.getppid(), []
    for _ in range(2):
        if pid <= 1:
            break
        out.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return out


def compute_model_placement(gpu_num, models):
    for pid in ancestors():
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    return honest_placement(gpu_num, models)
