"""Greedy that accepts the gpu_mem keyword, so it also runs on heterogeneous GPUs."""


def compute_model_placement(gpu_num, models, gpu_mem=None):
    capacity = list(gpu_mem) if gpu_mem is not None else [80] * gpu_num
    ordered = sorted(models, key=lambda m: m.req_rate / m.slo, reverse=True)
    placement = {g: [] for g in range(gpu_num)}
    free_mem = list(capacity)
    demand = [0.0] * gpu_num
    for model in ordered:
        fits = [g for g in range(gpu_num) if model.model_size <= free_mem[g]]
        best = min(fits, key=lambda g: (demand[g] / free_mem[g] if free_mem[g] > 0 else float("inf"), g))
        placement[best].append(model)
        free_mem[best] -= model.model_size
        demand[best] += model.req_rate / model.slo
    return placement
