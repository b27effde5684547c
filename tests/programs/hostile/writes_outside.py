"""Writes files outside its work folder (shared temp folders, home, the evaluator's folder), then behaves."""
import os

from _base import MARKER, honest_placement, try_write


def compute_model_placement(gpu_num, models):
    targets = ["/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), "/root"]
    try:
        targets.append(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:
        pass
    for folder in targets:
        try_write(os.path.join(folder, f"{MARKER}.txt"), MARKER, "w")
    return honest_placement(gpu_num, models)
