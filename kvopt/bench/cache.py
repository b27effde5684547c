"""Scores of programs already evaluated, so a generation of evolved programs reruns only what is new.

A program's ranking row (``kvopt.bench.evaluate.ranking``) is stored under a key
that is the SHA-256 of everything its score depends on:

* the program file's bytes (a program that imports sibling modules is keyed by
  its own file only: change the file, or pass ``--no-cache``);
* the fingerprints of the suites and references it was scored on, and of
  kvopt's own code (``kvopt.bench.trust``);
* the settings (timeout, memory, isolation level, exact time limit).

The cache lives in the user's cache folder (``$XDG_CACHE_HOME/kvopt/evaluations``,
default ``~/.cache/kvopt/evaluations``; ``$KVOPT_CACHE_DIR`` overrides it).
Contained programs cannot write there (bubblewrap's filesystem is read-only,
Landlock allows writes only in the call's work folder); with ``--no-isolation``
the cache is not used at all, since a program could then plant a score.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

FORMAT = 1


def cache_folder() -> Path:
    """Where cached scores are kept (see the module docstring)."""
    named = os.environ.get("KVOPT_CACHE_DIR")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kvopt" / "evaluations"


def program_key(program_path: str, trusted: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """The cache key of a program file under these suites, code and settings; ``None`` if unreadable."""
    try:
        source = Path(program_path).read_bytes()
    except OSError:
        return None
    material = json.dumps({"format": FORMAT, "source": hashlib.sha256(source).hexdigest(), "trusted": trusted,
                           "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def load_row(key: str, folder: Path | None = None) -> dict[str, Any] | None:
    """The stored row of ``key``, or ``None`` (missing or unreadable entries are misses)."""
    path = (folder or cache_folder()) / f"{key}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("row") if isinstance(data, dict) and data.get("format") == FORMAT else None


def store_row(key: str, row: Mapping[str, Any], folder: Path | None = None) -> None:
    """Store ``row`` under ``key`` (atomically: written aside, then renamed); a read-only cache is skipped."""
    folder = folder or cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT, "row": dict(row)}, default=str))
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass
