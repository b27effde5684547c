"""Keeps every model on the GPU it runs on now (cur_gpu_id); new models go to GPU 0."""


def compute_model_placement(gpu_num, models):
    placement = {g: [] for g in range(gpu_num)}
    for model in models:
        placement[model.cur_gpu_id if model.cur_gpu_id is not None else 0].append(model)
    return placement
