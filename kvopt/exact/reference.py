"""Reference optima of a suite: solve every case exactly and store ``<folder>/reference.json``.

Format::

    {"suite": name, "generated_by": "...", "created": ISO date,
     "cases": {case: {"value": "p/q", "value_float", "status", "lower_bound": "p/q",
                      "lower_bound_float", "gap", "backend", "model", "seconds"}}}

``value`` is the exact optimum when ``status == "optimal"`` (then ``lower_bound ==
value`` and ``gap == 0``); with ``feasible`` (time limit) it is the best peak found
and ``lower_bound`` the best proven bound.  Exact values are ``"p/q"`` strings
(``"inf"`` for an infinite peak; ``null`` when there is none).  ``seconds``
depends on the machine; everything else is deterministic.
"""

from __future__ import annotations

import json
import math
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kvopt.evaluate import format_fraction
from kvopt.model import KvoptError, Result


def case_entry(result: Result) -> dict[str, Any]:
    """The reference entry of one exact ``Result``."""
    has_value = result.placement is not None
    return {
        "value": format_fraction(result.peak_kvpr_exact) if has_value else None,
        "value_float": _json_float(result.peak_kvpr) if has_value else None,
        "status": result.status,
        "lower_bound": format_fraction(result.lower_bound_exact) if result.lower_bound is not None else None,
        "lower_bound_float": _json_float(result.lower_bound),
        "gap": _json_float(result.gap),
        "backend": result.details.get("backend"),
        "model": result.details.get("model"),
        "seconds": round(result.seconds, 4),
    }


def _json_float(value: float | None) -> float | str | None:
    """JSON has no infinity: ``"inf"`` stands for it."""
    if value is None:
        return None
    return "inf" if math.isinf(value) else value


def build_reference(suite_name: str, *, backend: str = "auto", time_limit_s: float = 60.0,
                    progress: Any = None, root: str | Path | None = None) -> dict[str, Any]:
    """Solve every case of ``suite_name`` with ``solve_exact`` and return the reference document."""
    from kvopt.exact.bisection import solve_exact
    from kvopt.suites import load_suite

    instances = load_suite(suite_name, root)
    bar = _progress_bar(progress, len(instances), suite_name)
    cases: dict[str, Any] = {}
    try:
        for inst in instances:
            result = solve_exact(inst, backend=backend, time_limit_s=time_limit_s)
            cases[inst.name] = case_entry(result)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(case=inst.name, status=result.status, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return {
        "suite": suite_name,
        "generated_by": f"kvopt.exact.solve_exact(backend={backend!r}, time_limit_s={time_limit_s:g}) "
                        f"on {platform.python_implementation()} {platform.python_version()}",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cases": cases,
    }


def _progress_bar(progress: Any, total: int, suite_name: str) -> Any:
    """A tqdm bar when ``progress`` is truthy and stderr is a terminal."""
    if not progress:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=f"reference {suite_name}", unit="case", disable=not sys.stderr.isatty())


def write_reference(suite_name: str, out_dir: str | Path, *, backend: str = "auto", time_limit_s: float = 60.0,
                    progress: Any = None, root: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """``build_reference`` and write it to ``out_dir/reference.json``; return (path, document).

    When ``out_dir`` holds no instance files the suite's instances are written
    beside it, so the folder is a complete suite for ``--suite out_dir``.
    """
    from kvopt.suites import REFERENCE_FILE, instance_files, write_suite

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KvoptError(f"--out {out}: exists and is not a folder")
    data = build_reference(suite_name, backend=backend, time_limit_s=time_limit_s, progress=progress, root=root)
    if not instance_files(out):
        write_suite(suite_name, out)
    path = out / REFERENCE_FILE
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path, data
