"""Returns copies of the models instead of the given objects."""
import copy

from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    return {g: [copy.copy(m) for m in ms] for g, ms in placement.items()}
