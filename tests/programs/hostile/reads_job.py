"""At load time, tries to learn which call it is in: re-reads the job from descriptor 0, and looks
through the evaluator's frames for a job that says "probe".  If it learns anything it drops a
model in every call, so the cases are invalid (the issue-17 attack solved the suite in the probe)."""
import os
import sys

from _base import honest_placement


def learned():
    found = []
    for path in (0, "/proc/self/fd/0"):
        try:
            data = os.read(path, 1 << 16) if path == 0 else open(path, "rb").read(1 << 16)
            if b"models" in data or b"probe" in data:
                found.append(f"job on {path}")
        except OSError:
            pass
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict) and "mode" in value:
                found.append(f"mode {value['mode']!r} in {frame.f_code.co_name}")
        frame = frame.f_back
    return found


LEARNED = learned()


def compute_model_placement(gpu_num, models):
    placement = honest_placement(gpu_num, models)
    if LEARNED:
        print("learned:", LEARNED, file=sys.stderr)
        for gpu in placement:
            if placement[gpu]:
                placement[gpu] = placement[gpu][1:]
                break
    return placement
