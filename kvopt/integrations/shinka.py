"""kvopt as a ShinkaEvolve evaluator: ``main(program_path, results_dir)`` and the command line Shinka runs.

Shinka runs ``python evaluate.py --program_path P --results_dir D`` for each
program and reads two files from ``D``, as its own ``run_shinka_eval`` writes them:

* ``metrics.json``: ``{"combined_score", "public": {...}, "private": {...},
  "text_feedback"}`` — ``public`` (shown to the LLM) holds the fractions, gaps
  and the ADRS score, ``private`` the rest of ``kvopt.integrations.loop``'s metrics;
* ``correct.json``: ``{"correct", "error"}`` — correct when the program loaded
  and every case was valid; ``error`` the first reason otherwise.

``kvopt evaluator --framework shinka --out evaluate.py`` writes::

    from kvopt.integrations.shinka import main, run_from_command_line
    if __name__ == "__main__": raise SystemExit(run_from_command_line())
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Sequence

from kvopt.model import KvoptError
from kvopt.integrations.loop import ProgramScore, config_from, score_program

PUBLIC = ("valid_fraction", "optimal_fraction", "mean_gap", "max_gap", "adrs_combined_score")


def shinka_metrics(score: ProgramScore) -> dict[str, Any]:
    """``metrics.json``'s content for a ``ProgramScore``."""
    metrics = dict(score.metrics)
    public = {k: metrics[k] for k in metrics if k in PUBLIC or k.startswith(("mean_gap_", "score_"))}
    private = {k: v for k, v in metrics.items() if k not in public and k != "combined_score"}
    text = "\n\n".join(f"{name}:\n{body}" for name, body in score.feedback.items())
    return {"combined_score": metrics["combined_score"], "public": public, "private": private,
            "text_feedback": text}


def write_results(results_dir: str, score: ProgramScore) -> dict[str, Any]:
    os.makedirs(results_dir, exist_ok=True)
    metrics = shinka_metrics(score)
    with open(os.path.join(results_dir, "metrics.json"), "w") as out:
        json.dump(metrics, out, indent=2)
    with open(os.path.join(results_dir, "correct.json"), "w") as out:
        json.dump({"correct": score.passed, "error": score.error}, out, indent=2)
    return metrics


def main(program_path: str, results_dir: str, **settings: Any) -> dict[str, Any]:
    """Score ``program_path`` on the full suites and write ``metrics.json`` and ``correct.json``; the metrics."""
    config = config_from(**settings)
    return write_results(results_dir, score_program(program_path, config.suites, config, stage="full"))


def configured(**settings: Any) -> Callable[[str, str], dict[str, Any]]:
    """``main`` with ``LoopConfig`` settings baked in (checked now; the environment still wins)."""
    config_from(**settings)

    def configured_main(program_path: str, results_dir: str) -> dict[str, Any]:
        return main(program_path, results_dir, **settings)

    return configured_main


def run_from_command_line(argv: Sequence[str] | None = None,
                          main: Callable[[str, str], dict[str, Any]] = main) -> int:
    """``--program_path P --results_dir D``, as Shinka's scheduler passes them; exit 0 when the files are written.

    Exit 2 (and no files) for a bad ``KVOPT_*`` setting.
    """
    parser = argparse.ArgumentParser(description="kvopt evaluator for ShinkaEvolve")
    parser.add_argument("--program_path", required=True)
    parser.add_argument("--results_dir", required=True)
    args = parser.parse_args(argv)
    try:
        metrics = main(args.program_path, args.results_dir)
    except KvoptError as exc:  # a bad KVOPT_* setting: the user's to fix, no file written
        print(f"kvopt: error: {exc}", file=sys.stderr)
        return 2
    print(f"kvopt: combined_score {metrics['combined_score']:.4f}; wrote {args.results_dir}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(run_from_command_line())
