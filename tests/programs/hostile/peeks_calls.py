"""At call time, looks for other calls' folders (job, answer, work files) in the evaluator's
temporary folder (given in a file beside this program by the test) and in /tmp.  If it can
list or read anything of another call, it drops a model, so the case is invalid."""
import glob
import os
import sys

from _base import honest_placement

HERE = os.path.dirname(os.path.abspath(__file__))


def peeked():
    places = ["/tmp", "/var/tmp"]
    try:
        places.append(open(os.path.join(HERE, "evaluator_tmpdir.txt")).read().strip())
    except OSError:
        pass
    seen = []
    for place in places:
        for folder in glob.glob(os.path.join(place, "kvopt-run-*")):
            try:
                seen.append(f"{folder}: {os.listdir(folder)}")
            except OSError:
                pass
            for path in glob.glob(os.path.join(folder, "*", "*")):
                try:
                    open(path, "rb").read(1)
                    seen.append(path)
                except OSError:
                    pass
    return seen


def compute_model_placement(gpu_num, models):
    placement = honest_placement(gpu_num, models)
    seen = peeked()
    if seen:
        print("saw:", seen[:5], file=sys.stderr)
        for gpu in placement:
            if placement[gpu]:
                placement[gpu] = placement[gpu][1:]
                break
    return placement
