"""The cases a benchmark runs on: built-in suites or folders of instance files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.model import Instance, KvoptError


@dataclass(frozen=True)
class SuiteCases:
    """One suite's instances and stored reference optima.

    ``key`` is how the user named it (a suite name, or a folder path) and is what
    results files store so a run can be repeated; ``name`` is the display name.
    """

    key: str
    name: str
    instances: tuple[Instance, ...]
    references: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def load_cases(suite: str) -> SuiteCases:
    """A built-in suite by name (``kvopt.suites.SUITES``), else a folder of ``<case>.json`` files.

    Everything is read and validated here, once: the result holds the instances
    and references in memory, so nothing is read from disk afterwards.  A name
    resolves only to ``$KVOPT_INSTANCES/<name>`` or the package's own data, never
    to the working directory (``kvopt.suites``).  A folder may hold a
    ``reference.json`` in the format of ``kvopt reference``.  Raises ``KvoptError``
    for an unknown suite, an empty folder, or a malformed instance or reference file.
    """
    from kvopt.suites import SUITES, load_reference, load_suite, read_instances, read_reference

    if suite in SUITES:
        return SuiteCases(suite, suite, tuple(load_suite(suite)), load_reference(suite))
    folder = Path(suite)
    if not folder.is_dir():
        known = ", ".join(sorted(SUITES))
        raise KvoptError(f"unknown suite {suite!r}; known suites: {known} (or give a folder of instance files)")
    instances = read_instances(folder)
    if not instances:
        raise KvoptError(f"suite folder {suite}: holds no instance files (*.json)")
    return SuiteCases(suite, folder.name, tuple(instances), read_reference(folder))


def has_reference_value(entry: Mapping[str, Any] | None) -> bool:
    """Whether a reference entry holds a finite value (an optimum or a best-known peak)."""
    return bool(entry) and entry.get("status") in ("optimal", "feasible") \
        and entry.get("value") not in (None, "inf")  # type: ignore[union-attr]


def missing_reference_cases(suites: Sequence[SuiteCases]) -> list[tuple[str, str]]:
    """``(suite_key, case)`` of every case without a stored reference value."""
    return [(suite.key, instance.name) for suite in suites for instance in suite.instances
            if not has_reference_value(suite.references.get(instance.name))]


def missing_reference_warnings(suites: Sequence[SuiteCases]) -> list[str]:
    """One line per suite with cases lacking a stored reference: their gaps are against a bound."""
    lines = []
    for suite in suites:
        missing = sum(1 for inst in suite.instances if not has_reference_value(suite.references.get(inst.name)))
        if missing:
            hint = (f"run `kvopt reference --suite {suite.key}`" if suite.key == suite.name
                    else f"add {suite.key}/reference.json")
            lines.append(f"kvopt: warning: suite {suite.name}: {missing} of {len(suite.instances)} cases have no "
                         f"stored reference optimum; their gaps are against this run's exact result or a lower "
                         f"bound ({hint}, or pass --solve-missing)")
    return lines


def load_all(suites: Sequence[str]) -> list[SuiteCases]:
    """Each named suite once, in the order given."""
    seen: dict[str, SuiteCases] = {}
    for suite in suites:
        if suite not in seen:
            seen[suite] = load_cases(suite)
    return list(seen.values())
