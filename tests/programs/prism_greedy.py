"""Prism's greedy in the style of the ADRS/OpenEvolve prism example (a fixture, not kvopt code).

Models by req_rate/slo descending; each goes to the GPU with the lowest current
KVPR (demand / remaining memory) among the GPUs it fits on.
"""

GPU_MEM_SIZE = 80  # GB


def compute_model_placement(gpu_num, models):
    ordered = sorted(models, key=lambda m: m.req_rate / m.slo, reverse=True)
    placement = {gpu_id: [] for gpu_id in range(gpu_num)}
    free_mem = [GPU_MEM_SIZE] * gpu_num
    demand = [0.0] * gpu_num
    for model in ordered:
        best_gpu, best_kvpr = None, float("inf")
        for gpu_id in range(gpu_num):
            if model.model_size <= free_mem[gpu_id] and free_mem[gpu_id] > 0:
                kvpr = demand[gpu_id] / free_mem[gpu_id]
                if kvpr < best_kvpr:
                    best_gpu, best_kvpr = gpu_id, kvpr
        if best_gpu is None:
            raise ValueError(f"model {model.model_name} fits on no GPU")
        placement[best_gpu].append(model)
        free_mem[best_gpu] -= model.model_size
        demand[best_gpu] += model.req_rate / model.slo
    return placement
