"""Puts the first model on GPU 0 in addition to where greedy put it."""
from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    first = models[0]
    target = 1 if first in placement[0] else 0
    placement[target].append(first)
    return placement
