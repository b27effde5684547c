"""The 50-case benchmark of the public ADRS/OpenEvolve "prism" model-placement example.

Reproduced exactly: numpy's legacy global generator seeded with 42, then for each
of 50 cases ``gpu_num = randint(5, 10)`` and, for ``j in range(2 * gpu_num)``, in
this order ``model_size = randint(10, 30)``, ``req_rate = randint(1, 10)``,
``slo = randint(5, 10)``; models are named ``model_j``; GPUs have 80 GB.
(``randint(a, b)`` is numpy's, so ``b`` is exclusive.)
"""

from __future__ import annotations

import numpy as np

from kvopt.model import DEFAULT_GPU_MEM_GB, Instance

NUM_CASES = 50
SEED = 42


def generate_adrs50() -> list[Instance]:
    """The 50 instances, in case order (``adrs50_00`` … ``adrs50_49``)."""
    # The published benchmark draws from the legacy *global* generator; we save and
    # restore its state so generating the suite does not disturb the caller's stream.
    state = np.random.get_state()
    try:
        np.random.seed(SEED)
        cases = []
        for case in range(NUM_CASES):
            gpu_num = int(np.random.randint(5, 10))
            models = []
            for j in range(2 * gpu_num):
                size = int(np.random.randint(10, 30))
                rate = int(np.random.randint(1, 10))
                slo = int(np.random.randint(5, 10))
                models.append({"name": f"model_{j}", "size_gb": size, "req_rate": rate, "slo": slo})
            cases.append(Instance.build(
                models, [DEFAULT_GPU_MEM_GB] * gpu_num, name=f"adrs50_{case:02d}",
                meta={"generator": "adrs50", "seed": SEED, "case": case, "family": "adrs50"},
            ))
        return cases
    finally:
        np.random.set_state(state)
