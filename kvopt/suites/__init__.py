"""Instance suites: deterministic generators, files under ``instances/<suite>/``, reference optima.

A suite is a named, seeded generator of instances.  ``write_suite`` stores it as
one JSON file per case; ``load_suite`` reads those files (or regenerates the
suite when no files are stored).  Reference optima live in
``<folder>/reference.json`` (format: ``kvopt.exact.reference``).

Where a built-in suite NAME is read from — never the working directory, which a
hostile program could have filled:

1. ``$KVOPT_INSTANCES/<name>/`` when that variable is set and the folder exists
   (the user's explicit choice);
2. the package's own data: the repository's top-level ``instances/`` folder when
   kvopt runs from a source checkout (``pip install -e .`` or ``PYTHONPATH``),
   else the copy a wheel ships as ``kvopt/_instances/``.

A user's own folder is given as a path (``--suite DIR``), never as a name.
"""

from __future__ import annotations

import importlib.resources
import os
from fractions import Fraction
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from kvopt.io import instance_from_dict, read_json, save_instance
from kvopt.model import Instance, KvoptError
from kvopt.suites.adrs50 import generate_adrs50
from kvopt.suites.registry import SUITES, Suite, register

REFERENCE_FILE = "reference.json"

register(Suite("adrs50", "the 50 cases of the ADRS/OpenEvolve prism example (seed 42, 5-9 GPUs x 80 GB)",
               generate_adrs50))
import kvopt.suites.families  # noqa: E402,F401  (the hard families register themselves on import)
import kvopt.suites.replan  # noqa: E402,F401  (the re-placement suites register themselves on import)


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KvoptError(f"unknown suite {name!r}; known suites: {', '.join(sorted(SUITES))}")
    return SUITES[name]


def builtin_instances_dir() -> Traversable | None:
    """The built-in suites' files shipped with this kvopt (``None`` if the data was not installed).

    A source checkout reads its ``instances/`` folder directly (it is the single
    source of truth); an installed wheel reads the same files as package data.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "instances").is_dir():
        return checkout / "instances"
    # kvopt is a regular package, so this is a plain path in a wheel install (kvopt._instances,
    # having no __init__.py, would be a namespace package).
    data = importlib.resources.files("kvopt") / "_instances"
    return data if data.is_dir() else None


def suite_folder(name: str, root: str | Path | None = None) -> Traversable | None:
    """The folder suite ``name`` is read from: ``root/name`` when given, else as the module docstring says."""
    if root is not None:
        return Path(root) / name
    user = os.environ.get("KVOPT_INSTANCES")
    if user and (Path(user) / name).is_dir():
        return Path(user) / name
    base = builtin_instances_dir()
    return base / name if base is not None else None


def write_suite(name: str, out_dir: str | Path) -> list[Path]:
    """Generate suite ``name`` and write one ``<case>.json`` per instance into ``out_dir``.

    ``out_dir`` is created (with its parents) if needed; an existing file there is an error.
    """
    suite = get_suite(name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KvoptError(f"--out {out}: exists and is not a folder")
    instances = suite.generate()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for inst in instances:
        path = out / f"{inst.name}.json"
        save_instance(inst, path)
        paths.append(path)
    return paths


def instance_files(folder: Traversable | None) -> list[Traversable]:
    """The ``*.json`` instance files of a folder (not ``reference.json``), sorted by name."""
    if folder is None or not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".json") and f.name != REFERENCE_FILE
                   and f.is_file()), key=lambda f: f.name)


def read_instances(folder: Traversable | None) -> list[Instance]:
    """Every instance file of ``folder``, validated (``KvoptError`` names the file)."""
    out = []
    for f in instance_files(folder):
        data = read_json(f)
        try:
            out.append(instance_from_dict(data, default_name=f.name[:-len(".json")]))
        except KvoptError as exc:
            raise KvoptError(f"{f}: {exc}") from None
    return out


def load_suite(name: str, root: str | Path | None = None) -> list[Instance]:
    """The instances of a suite, from its folder's ``*.json`` files when present, else generated."""
    stored = read_instances(suite_folder(name, root))
    return stored if stored else get_suite(name).generate()


def load_reference(name: str, root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """``{case_name: {"value": "p/q", "status", "lower_bound", ...}}``; empty if none stored."""
    return read_reference(suite_folder(name, root))


REFERENCE_STATUSES = ("optimal", "feasible", "infeasible", "unknown")


def read_reference(folder: Traversable | None) -> dict[str, dict[str, Any]]:
    """The validated ``reference.json`` of a folder as ``{case: entry}``; empty when absent.

    Bad JSON or a wrong shape is a ``KvoptError`` naming the file and the case.
    """
    if folder is None:
        return {}
    path = folder / REFERENCE_FILE
    if not path.is_file():
        return {}
    return parse_reference(read_json(path), str(path))


def parse_reference(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """Check the shape of a reference document: ``{"cases": {case: entry}}`` (or the bare mapping).

    Each entry is an object whose ``status`` is one of ``REFERENCE_STATUSES`` and
    whose ``value``/``lower_bound`` are ``null``, ``"inf"``, a ``"p/q"`` string or a number.
    """
    if not isinstance(data, dict):
        raise KvoptError(f"{where}: expected a JSON object, got {type(data).__name__}")
    cases = data.get("cases", data)
    if not isinstance(cases, dict):
        raise KvoptError(f"{where}: field 'cases': expected an object {{case: entry}}")
    out: dict[str, dict[str, Any]] = {}
    for case, entry in cases.items():
        if not isinstance(entry, dict):
            raise KvoptError(f"{where}: case {case!r}: expected an object, got {type(entry).__name__}")
        if entry.get("status") not in REFERENCE_STATUSES:
            raise KvoptError(f"{where}: case {case!r}: field 'status' must be one of "
                             f"{', '.join(REFERENCE_STATUSES)}, got {entry.get('status')!r}")
        for key in ("value", "lower_bound"):
            _check_fraction_field(entry.get(key), f"{where}: case {case!r}: field {key!r}")
        if entry["status"] in ("optimal", "feasible") and entry.get("value") is None:
            raise KvoptError(f"{where}: case {case!r}: status {entry['status']!r} needs a 'value'")
        out[str(case)] = dict(entry)
    return out


def _check_fraction_field(value: Any, where: str) -> None:
    if value is None or value == "inf":
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise KvoptError(f"{where}: expected \"p/q\", \"inf\", a number or null, got {value!r}")
    try:
        parsed = Fraction(value)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise KvoptError(f"{where}: expected \"p/q\", \"inf\", a number or null, got {value!r}") from None
    if parsed < 0:
        raise KvoptError(f"{where}: must be >= 0, got {value!r}")
