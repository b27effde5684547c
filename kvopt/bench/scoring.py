"""Gaps to reference optima, per-method summaries and the two ADRS scores.

Reference of a case (first that exists):

1. the stored reference (``instances/<suite>/reference.json``) with a value —
   its status is ``optimal`` or ``feasible`` (best known, not proven);
2. an exact solve in this run (method ``exact``, or ``--solve-missing``) that
   returned a placement — status as the solver reported it;
3. the best lower bound known (the stored one, the exact solve's, and
   ``kvopt.bounds``) — status ``bound``.

A record's ``reference_missing`` is true when its case has no stored reference
value (its gap is then against this run's exact result or a lower bound), and a
summary counts those records as ``missing_references``.

``gap = peak / reference - 1`` (negative when a method beats a non-proven
reference).  A case is *optimal* when ``gap <= 1e-9`` and the reference is a
proven optimum — or a lower bound, since meeting a lower bound proves optimality.

ADRS scores of a method over ``n`` cases with peaks ``p_i`` on its valid cases:
``score_legacy = 1 / mean(p_i over valid) + valid / n`` (0 when nothing is
valid), as the public prism evaluator computes it, and
``score_bounded = sum(1 / (1 + p_i) over valid) / n`` (a failed case counts 0).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from kvopt.bench.cases import SuiteCases
from kvopt.bounds import simple_lower_bound
from kvopt.evaluate import format_fraction, parse_fraction
from kvopt.model import ExactValue, Instance, relative_gap, to_fraction

OPTIMAL_GAP = 1e-9
PROVEN = ("optimal", "bound")


@dataclass(frozen=True)
class Reference:
    """The value gaps are measured against, what it is and where it came from."""

    value: Fraction
    status: str  # optimal | feasible | bound
    source: str  # reference.json | exact | solve-missing | lower bound
    lower_bound: Fraction | None = None  # the best proven bound known with it

    def to_json(self) -> dict[str, Any]:
        bound = self.value if self.status in PROVEN else self.lower_bound
        return {"reference": float(self.value), "reference_exact": format_fraction(self.value),
                "reference_status": self.status, "reference_source": self.source,
                "reference_bound": None if bound is None else float(bound)}


def _fraction(text: Any) -> Fraction | None:
    if text is None:
        return None
    if isinstance(text, str):
        return parse_fraction(text)
    return to_fraction(text)


def stored_reference(entry: Mapping[str, Any] | None) -> Reference | None:
    """The reference.json entry of a case, when it holds a finite value."""
    if not entry or entry.get("status") not in ("optimal", "feasible"):
        return None
    value = _fraction(entry.get("value"))
    if value is None:
        return None
    return Reference(value, str(entry["status"]), "reference.json", _fraction(entry.get("lower_bound")))


def exact_reference(record: Mapping[str, Any] | None) -> Reference | None:
    """An exact run's placement value as reference (status as the solver proved it)."""
    if not record or not record.get("valid") or record.get("peak_kvpr_exact") in (None, "inf"):
        return None
    status = "optimal" if record.get("status") == "optimal" else "feasible"
    source = "exact" if record.get("role") == "method" else "solve-missing"
    return Reference(parse_fraction(record["peak_kvpr_exact"]), status, source,  # type: ignore[arg-type]
                     _fraction(record.get("lower_bound_exact")))


def cheap_lower_bound(instance: Instance) -> ExactValue:
    """``kvopt.bounds.simple_lower_bound`` (a ``Fraction``, or ``math.inf``)."""
    return simple_lower_bound(instance)


def best_lower_bound(candidates: Iterable[Fraction | None]) -> Reference | None:
    known = [c for c in candidates if c is not None]
    if not known:
        return None
    return Reference(max(known), "bound", "lower bound")


def choose_references(suites: Sequence[SuiteCases], records: Sequence[Mapping[str, Any]]
                      ) -> dict[tuple[str, str], Reference | None]:
    """The reference of every case (see the module docstring for the order of preference)."""
    exact_by_case: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in records:
        if r["kind"] == "exact":
            key = (r["suite_key"], r["case"])
            # Prefer the method run over a --solve-missing run of the same case.
            if key not in exact_by_case or r["role"] == "method":
                exact_by_case[key] = r
    out: dict[tuple[str, str], Reference | None] = {}
    for suite in suites:
        for instance in suite.instances:
            key = (suite.key, instance.name)
            entry = suite.references.get(instance.name)
            exact = exact_by_case.get(key)
            chosen = stored_reference(entry) or exact_reference(exact)
            if chosen is None:
                chosen = best_lower_bound([_fraction((entry or {}).get("lower_bound")),
                                           _fraction((exact or {}).get("lower_bound_exact")),
                                           cheap_lower_bound(instance)])
            out[key] = chosen
    return out


def attach_gaps(records: Sequence[Mapping[str, Any]],
                references: Mapping[tuple[str, str], Reference | None]) -> list[dict[str, Any]]:
    """Records with ``reference*``, ``gap`` and ``optimal`` added."""
    out = []
    for r in records:
        ref = references.get((r["suite_key"], r["case"]))
        extra: dict[str, Any] = {"reference": None, "reference_exact": None, "reference_status": None,
                                 "reference_source": None, "reference_bound": None, "gap": None,
                                 "optimal": False,
                                 "reference_missing": ref is None or ref.source != "reference.json"}
        if ref is not None:
            extra.update(ref.to_json())
            if r["valid"]:
                gap = relative_gap(r["peak_kvpr"], float(ref.value))
                extra["gap"] = gap
                extra["optimal"] = gap is not None and gap <= OPTIMAL_GAP and ref.status in PROVEN
        out.append({**r, **extra})
    return out


# -- scores and summaries -------------------------------------------------------------
def score_legacy(valid_peaks: Sequence[float], num_cases: int) -> float:
    """``1 / mean(valid peaks) + valid / cases``; 0 with no valid case."""
    if num_cases == 0 or not valid_peaks:
        return 0.0
    mean_peak = sum(valid_peaks) / len(valid_peaks)
    inverse = math.inf if mean_peak == 0 else 1.0 / mean_peak
    return inverse + len(valid_peaks) / num_cases


def score_bounded(valid_peaks: Sequence[float], num_cases: int) -> float:
    """``mean(1 / (1 + peak))`` over all cases, a failed case counting 0 (in ``[0, 1]``)."""
    if num_cases == 0:
        return 0.0
    return sum(1.0 / (1.0 + p) for p in valid_peaks) / num_cases


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary of one method's records (all with gaps attached)."""
    valid = [r for r in records if r["valid"]]
    peaks = [float(r["peak_kvpr"]) for r in valid]
    gaps = [float(r["gap"]) for r in valid if r["gap"] is not None]
    failures: dict[str, int] = {}
    for r in records:
        if not r["valid"]:
            failures[r["failure"]] = failures.get(r["failure"], 0) + 1
    return {
        "cases": len(records),
        "valid": len(valid),
        "optimal": sum(1 for r in records if r["optimal"]),
        "missing_references": sum(1 for r in records if r.get("reference_missing", False)),
        "mean_gap": sum(gaps) / len(gaps) if gaps else None,
        "median_gap": statistics.median(gaps) if gaps else None,
        "max_gap": max(gaps) if gaps else None,
        "score_legacy": score_legacy(peaks, len(records)),
        "score_bounded": score_bounded(peaks, len(records)),
        "seconds": sum(float(r["seconds"]) for r in records),
        "failures": dict(sorted(failures.items())),
    }


def summaries_by_method(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{method: summary}`` over the records of role ``method``, in the given method order."""
    return {m: summarize([r for r in records if r["method"] == m and r["role"] == "method"]) for m in methods}


def summaries_by_suite(records: Sequence[Mapping[str, Any]], suites: Sequence[str],
                       methods: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{suite: {method: summary}}`` (only pairs with at least one case)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for suite in suites:
        per_method = {}
        for m in methods:
            chosen = [r for r in records if r["suite"] == suite and r["method"] == m and r["role"] == "method"]
            if chosen:
                per_method[m] = summarize(chosen)
        out[suite] = per_method
    return out
