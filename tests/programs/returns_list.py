"""Returns a list of lists instead of a dict."""
from _greedy_core import greedy

GPU_MEM_SIZE = 80


def compute_model_placement(gpu_num, models):
    placement = greedy(gpu_num, models, GPU_MEM_SIZE)
    return [placement[g] for g in range(gpu_num)]
