"""Starts a long-sleeping child process named by the marker, then sleeps itself (for interrupt tests)."""
import subprocess
import sys
import time

from _base import MARKER


def compute_model_placement(gpu_num, models):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", MARKER])
    time.sleep(300)
    return {}
