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

_BANNER_SILENCED = False


def cbc_engine(**options: Any) -> Any:
    """PuLP's bundled CBC, with CBC's preprocessing switched off.

    CBC 2.10.3 (the build PuLP ships) declares some feasible 0/1 models
    infeasible in its preprocessing (``CglPreProcess``: "Cut generators found to
    be infeasible"); a 12-variable assignment model found by the property tests
    is one.  With ``preprocess off`` it answers correctly, and an infeasibility
    claim is only ever a proof when it survives the checks in ``MilpBackend``.
    """
    with warnings.catch_warnings():
        # PuLP 3.x deprecates PULP_CBC_CMD in favour of COIN_CMD, which needs a separately installed CBC.
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, threads=1, options=["preprocess off"], **options)


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
