"""Leaves a daemon behind: fork, setsid, fork again, then exec a long sleeper named by the marker."""
import os
import sys

from _base import MARKER, honest_placement


def compute_model_placement(gpu_num, models):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", MARKER])
        os._exit(0)
    return honest_placement(gpu_num, models)
