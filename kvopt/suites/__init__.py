"""Instance suites: deterministic generators, files under ``instances/<suite>/``, reference optima.

A suite is a named, seeded generator of instances.  ``write_suite`` stores it as
one JSON file per case; ``load_suite`` reads those files (or regenerates them when
the package is installed without the repository's ``instances/`` folder).
Reference optima live in ``instances/<suite>/reference.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kvopt.io import instance_from_dict, save_instance
from kvopt.model import Instance, KvoptError
from kvopt.suites.adrs50 import generate_adrs50
from kvopt.suites.registry import SUITES, Suite, register

register(Suite("adrs50", "the 50 cases of the ADRS/OpenEvolve prism example (seed 42, 5-9 GPUs x 80 GB)",
               generate_adrs50))
import kvopt.suites.families  # noqa: E402,F401  (the hard families register themselves on import)


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KvoptError(f"unknown suite {name!r}; known suites: {', '.join(sorted(SUITES))}")
    return SUITES[name]


def instances_dir() -> Path:
    """Where suites live: ``$KVOPT_INSTANCES``, else ``./instances``, else the repository's."""
    env = os.environ.get("KVOPT_INSTANCES")
    if env:
        return Path(env)
    cwd = Path.cwd() / "instances"
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parents[2] / "instances"


def write_suite(name: str, out_dir: str | Path) -> list[Path]:
    """Generate suite ``name`` and write one ``<case>.json`` per instance into ``out_dir``."""
    suite = get_suite(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for inst in suite.generate():
        path = out / f"{inst.name}.json"
        save_instance(inst, path)
        paths.append(path)
    return paths


def load_suite(name: str, root: str | Path | None = None) -> list[Instance]:
    """The instances of a suite, from ``<root>/<name>/*.json`` when present, else generated."""
    base = Path(root) if root is not None else instances_dir()
    folder = base / name
    files = sorted(p for p in folder.glob("*.json") if p.name != "reference.json") if folder.is_dir() else []
    if files:
        return [instance_from_dict(json.loads(p.read_text()), default_name=p.stem) for p in files]
    return get_suite(name).generate()


def reference_path(name: str, root: str | Path | None = None) -> Path:
    base = Path(root) if root is not None else instances_dir()
    return base / name / "reference.json"


def load_reference(name: str, root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """``{case_name: {"value": "p/q", "status", "lower_bound", ...}}``; empty if none stored."""
    path = reference_path(name, root)
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data.get("cases", data)
