"""Shared helper of the failure fixtures: a correct placement to then break."""


def greedy(gpu_num, models, capacity):
    ordered = sorted(models, key=lambda m: m.req_rate / m.slo, reverse=True)
    placement = {g: [] for g in range(gpu_num)}
    free_mem = [capacity] * gpu_num
    demand = [0.0] * gpu_num
    for model in ordered:
        fits = [g for g in range(gpu_num) if model.model_size <= free_mem[g]]
        best = min(fits, key=lambda g: (demand[g] / free_mem[g] if free_mem[g] > 0 else float("inf"), g))
        placement[best].append(model)
        free_mem[best] -= model.model_size
        demand[best] += model.req_rate / model.slo
    return placement
