"""``kvopt regress``: re-run a baseline's methods on its cases and flag what got worse.

The baseline is a results document (``results.json`` of ``kvopt report``).  The
same methods run on the same cases with the same settings; each (case, method)
is then compared with the baseline:

* ``worse``: the gap grew by more than ``tolerance``, or a valid result became
  invalid, or the case is missing now;
* ``better``: the gap shrank by more than ``tolerance``, or an invalid result
  became valid.

Gaps are compared against the *baseline's* reference value of the case, so an
improved reference optimum alone is not a regression (``gap = peak / ref - 1``;
without a reference the peaks themselves are compared: ``new / old - 1``).  The
run also regresses when a method's count of optimal cases dropped.

Only like is compared with like: a case whose reference *kind* changed (e.g. a
proven optimum in the baseline, only a lower bound now because the stored
reference is missing) is reported as ``not comparable`` — neither worse nor
better — and left out of the optimal counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from kvopt.bench.executors import Executor
from kvopt.bench.results import number, run_benchmark
from kvopt.bench.runner import MethodSpec, RunSettings, method_from_name, method_from_program
from kvopt.bench.sandbox import Limits
from kvopt.bench.trust import load_trusted
from kvopt.model import KvoptError, relative_gap
from kvopt.tables import format_table

DEFAULT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Change:
    """One (case, method) whose result changed.  Gaps are against the baseline's reference."""

    suite: str
    case: str
    method: str
    direction: str  # worse | better | not comparable
    what: str       # gap | now invalid | now valid | missing | reference kind
    old_gap: float | None
    new_gap: float | None
    old_peak: float | None
    new_peak: float | None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "case": self.case, "method": self.method, "direction": self.direction,
                "what": self.what, "old_gap": self.old_gap, "new_gap": self.new_gap,
                "old_peak": self.old_peak, "new_peak": self.new_peak, "reason": self.reason}


@dataclass(frozen=True)
class Comparison:
    """All changes, and per-method optimal counts ``{method: (baseline, now)}``."""

    changes: tuple[Change, ...]
    optimal_counts: Mapping[str, tuple[int, int]]
    tolerance: float

    @property
    def worse(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "worse"]

    @property
    def better(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "better"]

    @property
    def not_comparable(self) -> list[Change]:
        return [c for c in self.changes if c.direction == "not comparable"]

    @property
    def optimal_dropped(self) -> dict[str, tuple[int, int]]:
        return {m: (old, new) for m, (old, new) in self.optimal_counts.items() if new < old}

    @property
    def regressed(self) -> bool:
        return bool(self.worse or self.optimal_dropped)


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (record["suite_key"], record["case"], record["method"])


def gap_against(peak: Any, reference: Any, baseline_peak: Any) -> float | None:
    """``peak / reference - 1``; without a reference, ``peak / baseline_peak - 1``."""
    value = number(peak)
    if value is None:
        return None
    ref = number(reference)
    if ref is None:
        ref = number(baseline_peak)
    return relative_gap(value, ref)


def same_reference_kind(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether both runs measured the case against the same kind of reference (optimal/feasible/bound)."""
    return old.get("reference_status") == new.get("reference_status")


def compare_records(old: Mapping[str, Any], new: Mapping[str, Any] | None, tolerance: float) -> Change | None:
    """The change of one (case, method) from ``old`` to ``new`` (``None``: missing now)."""
    ident = (old["suite"], old["case"], old["method"])
    old_peak = number(old.get("peak_kvpr"))
    old_gap = gap_against(old.get("peak_kvpr"), old.get("reference"), old.get("peak_kvpr"))
    if new is None:
        return Change(*ident, "worse", "missing", old_gap, None, old_peak, None, "the case was not run")
    new_peak = number(new.get("peak_kvpr"))
    if old["valid"] and not new["valid"]:
        return Change(*ident, "worse", "now invalid", old_gap, None, old_peak, None, new.get("reason"))
    if not old["valid"] and new["valid"]:
        new_gap = gap_against(new.get("peak_kvpr"), old.get("reference"), new.get("peak_kvpr"))
        return Change(*ident, "better", "now valid", None, new_gap, None, new_peak, old.get("reason"))
    if not old["valid"]:
        return None
    if not same_reference_kind(old, new):
        reason = f"reference {old.get('reference_status')} -> {new.get('reference_status')}"
        return Change(*ident, "not comparable", "reference kind", old_gap, None, old_peak, new_peak, reason)
    new_gap = gap_against(new.get("peak_kvpr"), old.get("reference"), old.get("peak_kvpr"))
    if old_gap is None or new_gap is None or new_gap == old_gap:
        return None
    if new_gap > old_gap + tolerance or (math.isinf(new_gap) and not math.isinf(old_gap)):
        return Change(*ident, "worse", "gap", old_gap, new_gap, old_peak, new_peak)
    if new_gap < old_gap - tolerance:
        return Change(*ident, "better", "gap", old_gap, new_gap, old_peak, new_peak)
    return None


def compare_results(baseline: Mapping[str, Any], current: Mapping[str, Any],
                    tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """Compare every baseline (case, method) with the current run, in the baseline's order."""
    now = {_key(r): r for r in current["cases"] if r["role"] == "method"}
    changes = []
    for old in baseline["cases"]:
        if old["role"] != "method":
            continue
        change = compare_records(old, now.get(_key(old)), tolerance)
        if change is not None:
            changes.append(change)
    return Comparison(tuple(changes), comparable_optimal_counts(baseline, now, current["summary"]), tolerance)


def comparable_optimal_counts(baseline: Mapping[str, Any], now: Mapping[tuple[str, str, str], Mapping[str, Any]],
                              current_summary: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``{method: (optimal before, optimal now)}``, leaving out the cases whose reference kind changed."""
    counts = {method: [int(summary["optimal"]), int(current_summary.get(method, {"optimal": 0})["optimal"])]
              for method, summary in baseline["summary"].items()}
    for old in baseline["cases"]:
        new = now.get(_key(old))
        if old["role"] != "method" or new is None or same_reference_kind(old, new) or old["method"] not in counts:
            continue
        counts[old["method"]][0] -= bool(old.get("optimal"))
        counts[old["method"]][1] -= bool(new.get("optimal"))
    return {method: (old, new) for method, (old, new) in counts.items()}


def baseline_methods(baseline: Mapping[str, Any], limits: Limits) -> list[MethodSpec]:
    """The baseline's methods, resolved again (programs by the path they were given as)."""
    methods = []
    for entry in baseline["methods"]:
        if entry["kind"] in ("heuristic", "exact"):
            methods.append(method_from_name(entry["name"]))
        else:
            methods.append(method_from_program(entry["name"], limits))
    return methods


def baseline_settings(baseline: Mapping[str, Any]) -> RunSettings:
    s = baseline["settings"]
    return RunSettings(Limits(timeout_s=float(s["timeout_s"]), memory_mb=int(s["memory_mb"])),
                       exact_time_limit_s=float(s["exact_time_limit_s"]))


def rerun_baseline(baseline: Mapping[str, Any], *, executor: Executor | None = None,
                   progress: bool = False, command: str | None = None) -> dict[str, Any]:
    """Run the baseline's methods on the baseline's cases with its settings."""
    settings = baseline_settings(baseline)
    suites = [s["key"] for s in baseline["suites"]]
    only = {s["key"]: list(s["cases"]) for s in baseline["suites"]}
    if not suites:
        raise KvoptError("baseline: lists no suites")
    # Trusted state first: the suites are in memory before a baseline's program is probed.
    state = load_trusted(suites)
    methods = baseline_methods(baseline, settings.limits)
    return run_benchmark(list(state.suites), methods, settings, executor=executor, progress=progress,
                         command=command, only_cases=only)


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{100 * value:.4f}%"


def format_comparison(comparison: Comparison) -> str:
    """The changed cases as a table (worse first), then the optimal counts and the verdict."""
    lines = []
    ordered = comparison.worse + comparison.better + comparison.not_comparable
    if ordered:
        rows = [[c.direction, c.suite, c.case, c.method, c.what, _pct(c.old_gap), _pct(c.new_gap),
                 c.old_peak, c.new_peak, c.reason or ""] for c in ordered]
        lines.append(format_table(["change", "suite", "case", "method", "what", "old gap", "new gap",
                                   "old peak", "new peak", "reason"], rows, align="lllllrrrrl"))
    else:
        lines.append("no case changed")
    lines.append("")
    for method, (old, new) in comparison.optimal_counts.items():
        mark = "  <- dropped" if new < old else ""
        lines.append(f"optimal cases  {method}: {old} -> {new}{mark}")
    verdict = "REGRESSION" if comparison.regressed else "ok"
    skipped = comparison.not_comparable
    lines.append(f"{verdict}: {len(comparison.worse)} worse, {len(comparison.better)} better"
                 + (f", {len(skipped)} not comparable (reference kind changed; not counted)" if skipped else "")
                 + f" (tolerance {comparison.tolerance:g})")
    return "\n".join(lines)


def comparison_json(comparison: Comparison, current: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "regressed": comparison.regressed,
        "tolerance": comparison.tolerance,
        "worse": [c.to_json() for c in comparison.worse],
        "better": [c.to_json() for c in comparison.better],
        "not_comparable": [c.to_json() for c in comparison.not_comparable],
        "optimal": {m: {"baseline": old, "now": new} for m, (old, new) in comparison.optimal_counts.items()},
        "summary": current["summary"],
        "wall_seconds": current["wall_seconds"],
    }
