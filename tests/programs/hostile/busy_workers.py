"""At call time, forks 6 busy workers for about a second, then returns the honest placement:
with one CPU per call its whole tree may not use more than about one CPU-second per second."""
import os
import time

from _base import honest_placement


def compute_model_placement(gpu_num, models):
    children = []
    for _ in range(6):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                pass
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return honest_placement(gpu_num, models)
