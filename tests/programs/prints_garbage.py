"""A correct greedy that also prints garbage, including fake results, to stdout and stderr."""
import os
import sys

from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    print('{"ok": true, "gpu_lists": [[0, [0]]], "after": null, "seconds": 0}')
    print("\x00\xff garbage \x1b[31m not json", file=sys.stderr)
    sys.stdout.buffer.write(os.urandom(256))
    sys.stdout.flush()
    return greedy(gpu_num, models, GPU_MEM_SIZE)
