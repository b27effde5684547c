"""The one place that creates solver objects and sets their options.

Every backend gets its HiGHS objects, its CBC engine and its CP-SAT parameters
from here, so options that decide correctness (CBC's preprocessing, one thread,
the seed) and output hygiene (HiGHS's banner) are set once.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import pulp

from kvopt.exact.backend import MIN_LIMIT_S

_BANNER_SILENCED = False


def cbc_engine(**options: Any) -> Any:
    """PuLP's bundled CBC: serial branch-and-bound, preprocessing switched off.

    CBC 2.10.3 (the build PuLP ships) declares some feasible 0/1 models
    infeasible in its preprocessing (``CglPreProcess``: "Cut generators found to
    be infeasible"); a 12-variable assignment model found by the property tests
    is one.  With ``preprocess off`` it answers correctly, and an infeasibility
    claim is only ever a proof when it survives the checks in ``MilpBackend``.

    No ``threads`` option, on purpose: CBC's default (``threads 0``) is its
    serial code, while ``threads 1`` runs the *threaded* search with one worker,
    and in this build that worker sometimes never starts — the main thread waits
    for it about 10 s, whatever the time limit ("Thread 0 used 0 times, waiting
    to start 10.0"), about 1 call in 100-600 on tiny models: the "~10 s stall"
    of issue 11.  ``scripts/bench_cbc_threads.py`` measures both settings
    (``reports/cbc_threads.md``).  Serial CBC is deterministic as well.
    """
    with warnings.catch_warnings():
        # PuLP 3.x deprecates PULP_CBC_CMD in favour of COIN_CMD, which needs a separately installed CBC.
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, options=["preprocess off"], **options)


def new_highs() -> "Any":
    """A fresh ``highspy.Highs`` that prints nothing (the banner is muted once per process)."""
    import highspy

    silence_highs_banner()
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    return highs


def silence_highs_banner() -> None:
    """Create the process's first ``highspy.Highs`` with stdout muted.

    HiGHS prints a copyright banner to the C-level stdout when the first
    ``Highs`` object of a process is built (before any option can be set), which
    would corrupt JSON printed on stdout.  Later objects print nothing.
    """
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        return
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_SILENCED = True


def configured_highs(*, time_limit_s: float, seed: int = 0, **options: Any) -> Any:
    """A fresh silent HiGHS object with the options every kvopt solve uses (one thread, seed, limit).

    ``options`` are further HiGHS options by name (``mip_rel_gap=1e-7``).
    """
    highs = new_highs()
    configure_highs(highs, time_limit_s=time_limit_s, seed=seed, **options)
    return highs


def configure_highs(highs: Any, *, time_limit_s: float, seed: int = 0, **options: Any) -> None:
    """Set the common options on an existing HiGHS object (reused objects keep their model cache)."""
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("random_seed", int(seed))
    highs.setOptionValue("time_limit", float(max(time_limit_s, MIN_LIMIT_S)))
    for name, value in options.items():
        highs.setOptionValue(name, value)


def highs_engine_for_pulp(*, time_limit_s: float, seed: int = 0, engine: Any = None, **options: Any) -> Any:
    """PuLP's HiGHS interface with the common options (``engine``: a ``pulp.HiGHS`` subclass)."""
    silence_highs_banner()
    engine = engine or pulp.HiGHS
    return engine(msg=False, timeLimit=max(time_limit_s, MIN_LIMIT_S), threads=1, random_seed=int(seed), **options)


def configure_cpsat(solver: Any, *, time_limit_s: float, seed: int, workers: int) -> None:
    """CP-SAT parameters: the limit, the seed and the worker count (1 = deterministic)."""
    solver.parameters.max_time_in_seconds = max(MIN_LIMIT_S, float(time_limit_s))
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed


# -- statuses: each solver's own status -> "feasible" | "infeasible" | "unknown" ----------
# A solver status not in a map means "unknown" (time limit, numerical trouble, ...).
CPSAT_STATUS_MAP = {"OPTIMAL": "feasible", "FEASIBLE": "feasible", "INFEASIBLE": "infeasible"}
HIGHS_STATUS_MAP = {"kOptimal": "feasible", "kInfeasible": "infeasible"}
PULP_STATUS_MAP = {  # PuLP's solution status (``prob.sol_status``)
    pulp.LpSolutionOptimal: "feasible",
    pulp.LpSolutionIntegerFeasible: "feasible",
    pulp.LpSolutionInfeasible: "infeasible",
}


def mapped_status(status_map: dict[Any, str], solver_status: Any) -> str:
    return status_map.get(solver_status, "unknown")


def highs_status(highs: Any) -> tuple[str, str]:
    """``(feasible|infeasible|unknown, HiGHS's status text)``; a time limit with an incumbent is feasible."""
    model_status = highs.getModelStatus()
    status = mapped_status(HIGHS_STATUS_MAP, model_status.name)
    if status == "unknown" and highs_has_solution(highs):
        status = "feasible"
    return status, highs.modelStatusToString(model_status)


def highs_has_solution(highs: Any) -> bool:
    import highspy

    return highs.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible


def pulp_status(prob: Any) -> tuple[str, str]:
    """``(feasible|infeasible|unknown, "status/solution status")`` of a solved PuLP problem."""
    status = mapped_status(PULP_STATUS_MAP, prob.sol_status)
    if status == "unknown" and prob.status == pulp.LpStatusInfeasible:
        status = "infeasible"
    return status, f"{pulp.LpStatus[prob.status]}/{pulp.LpSolution[prob.sol_status]}"
