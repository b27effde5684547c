"""Leaves the last model out of the placement."""
from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    last = models[-1]
    for gpu_models in placement.values():
        if last in gpu_models:
            gpu_models.remove(last)
    return placement
