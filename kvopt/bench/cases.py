"""The cases a benchmark runs on: built-in suites or folders of instance files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.io import instance_from_dict
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

    A folder may hold a ``reference.json`` in the format of ``kvopt reference``.
    Raises ``KvoptError`` for an unknown suite or an empty folder.
    """
    from kvopt.suites import SUITES, load_reference, load_suite

    if suite in SUITES:
        return SuiteCases(suite, suite, tuple(load_suite(suite)), load_reference(suite))
    folder = Path(suite)
    if not folder.is_dir():
        known = ", ".join(sorted(SUITES))
        raise KvoptError(f"unknown suite {suite!r}; known suites: {known} (or give a folder of instance files)")
    files = sorted(p for p in folder.glob("*.json") if p.name != "reference.json")
    if not files:
        raise KvoptError(f"suite folder {suite}: holds no instance files (*.json)")
    instances = []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise KvoptError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        instances.append(instance_from_dict(data, default_name=path.stem))
    return SuiteCases(suite, folder.name, tuple(instances), folder_references(folder))


def folder_references(folder: Path) -> dict[str, dict[str, Any]]:
    """``{case: entry}`` from ``folder/reference.json``; empty when absent."""
    path = folder / "reference.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get("cases", data))


def load_all(suites: Sequence[str]) -> list[SuiteCases]:
    """Each named suite once, in the order given."""
    seen: dict[str, SuiteCases] = {}
    for suite in suites:
        if suite not in seen:
            seen[suite] = load_cases(suite)
    return list(seen.values())
