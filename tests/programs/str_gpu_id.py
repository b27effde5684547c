"""Uses GPU names ("gpu0", ...) as keys instead of integers."""
from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    return {f"gpu{g}": ms for g, ms in placement.items()}
