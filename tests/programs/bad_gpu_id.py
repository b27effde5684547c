"""Numbers GPUs from 1 to gpu_num instead of 0 to gpu_num-1."""
from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    return {g + 1: ms for g, ms in placement.items()}
