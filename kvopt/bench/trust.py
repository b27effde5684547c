"""Trusted state first: what the evaluator loads, checks and fingerprints before any untrusted code runs.

Order of a run of ``kvopt evaluate`` / ``kvopt report``:

1. ``load_trusted``: the suites' instances and reference optima are read and
   validated into memory (``SuiteCases``), the modules that score and write
   results are imported, and SHA-256 fingerprints are taken of the suite data and
   of kvopt's own source files;
2. only then is a program probed and run (contained: ``kvopt.bench.sandbox``);
   scoring uses the in-memory copy, never the files;
3. ``changed_code`` re-hashes kvopt's files at the end: under containment nothing
   can change them, so a difference means the containment failed (or was off,
   ``--no-isolation``) and the run is reported as untrustworthy (exit 1).

The fingerprints go into the results (``trusted``), so two results can be
compared knowing they were judged against the same data and code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import kvopt
from kvopt.bench.cases import SuiteCases, load_all
from kvopt.io import instance_to_dict

# Everything that turns a program's answer into a score or a file, imported before the program runs.
SCORING_MODULES = ("kvopt.evaluate", "kvopt.bench.scoring", "kvopt.bench.results", "kvopt.bench.report",
                   "kvopt.bench.plots", "kvopt.bench.journal", "kvopt.bench.regress", "kvopt.tables")


@dataclass(frozen=True)
class TrustedState:
    """The suites in memory and the fingerprints taken before any untrusted code ran."""

    suites: tuple[SuiteCases, ...]
    suite_sha256: Mapping[str, str]
    code_sha256: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"suites": dict(self.suite_sha256), "code": combined(self.code_sha256)}


def package_files() -> list[Path]:
    """kvopt's own source files (what ``import kvopt...`` would execute)."""
    root = Path(kvopt.__file__).resolve().parent
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def fingerprint_code() -> dict[str, str]:
    """``{relative path: sha256}`` of kvopt's source files."""
    root = Path(kvopt.__file__).resolve().parent
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in package_files()}


def combined(hashes: Mapping[str, str]) -> str:
    """One digest for a ``{name: digest}`` map (order-independent)."""
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()


def fingerprint_suite(suite: SuiteCases) -> str:
    """SHA-256 of a suite's instances and references as kvopt holds them in memory (canonical JSON)."""
    data = {"instances": [instance_to_dict(i) for i in suite.instances],
            "references": {k: dict(v) for k, v in suite.references.items()}}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def load_trusted(suite_names: Sequence[str]) -> TrustedState:
    """Step 1 above: suites in memory, scoring code imported, fingerprints taken."""
    suites = tuple(load_all(suite_names))
    for name in SCORING_MODULES:
        importlib.import_module(name)
    return TrustedState(suites, {s.key: fingerprint_suite(s) for s in suites}, fingerprint_code())


def changed_code(state: TrustedState) -> list[str]:
    """kvopt source files added, removed or changed since ``state`` was taken."""
    now = fingerprint_code()
    return sorted(name for name in set(now) | set(state.code_sha256) if now.get(name) != state.code_sha256.get(name))
