"""Puts every model on GPU 0, whatever its memory."""


def compute_model_placement(gpu_num, models):
    placement = {g: [] for g in range(gpu_num)}
    placement[0] = list(models)
    return placement
