"""A fixture in the style of an evolved program (not kvopt code): bisection on the target KVPR T.

For a target T a GPU holds models with sum(demand + T*size) <= T*capacity; each
trial packs models first-fit by that weight, largest first.  Starts from a plain
memory first-fit-decreasing packing, so it returns a placement whenever that finds one.
"""


def pack(models, capacity, weight, limit):
    order = sorted(range(len(models)), key=lambda i: -weight(i))
    load = [0.0] * len(capacity)
    used = [0.0] * len(capacity)
    gpu_of = [None] * len(models)
    for i in order:
        for g in range(len(capacity)):
            if used[g] + models[i].model_size <= capacity[g] and load[g] + weight(i) <= limit(g):
                gpu_of[i] = g
                load[g] += weight(i)
                used[g] += models[i].model_size
                break
        else:
            return None
    return gpu_of


def peak(models, capacity, gpu_of):
    worst = 0.0
    for g in range(len(capacity)):
        mine = [m for m, h in zip(models, gpu_of) if h == g]
        demand = sum(m.req_rate / m.slo for m in mine)
        free = capacity[g] - sum(m.model_size for m in mine)
        if mine:
            worst = max(worst, float("inf") if free <= 0 else demand / free)
    return worst


def compute_model_placement(gpu_num, models, gpu_mem=None):
    capacity = list(gpu_mem) if gpu_mem is not None else [80.0] * gpu_num
    models = list(models)
    best = pack(models, capacity, lambda i: models[i].model_size, lambda g: float("inf"))
    if best is None:
        raise ValueError("no memory-feasible packing found")
    high = peak(models, capacity, best)
    low = 0.0
    if high == float("inf"):
        high = 1e6
    for _ in range(40):
        target = (low + high) / 2
        trial = pack(models, capacity, lambda i: models[i].req_rate / models[i].slo + target * models[i].model_size,
                     lambda g: target * capacity[g])
        if trial is None:
            low = target
        else:
            high, best = target, trial
    return {g: [m for m, h in zip(models, best) if h == g] for g in range(gpu_num)}
