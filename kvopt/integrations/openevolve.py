"""kvopt as an OpenEvolve evaluator: point ``evaluator_file`` at a file that imports these functions.

``kvopt evaluator --framework openevolve --out evaluator.py`` writes::

    # OpenEvolve evaluator: kvopt scores each program in its sandbox against proven optima.
    from kvopt.integrations.openevolve import evaluate, evaluate_stage1, evaluate_stage2

(with settings, the second line is ``evaluate, evaluate_stage1, evaluate_stage2 =
configured(timeout_s=5, ...)``; ``KVOPT_*`` environment variables override both,
see ``kvopt.integrations.loop``).

* ``evaluate(path)``: every case of ``suites`` (adrs50 and the hard families);
  ``EvaluationResult(metrics, artifacts)`` with the metrics of
  ``kvopt.integrations.loop`` and the artifacts ``kvopt_summary``,
  ``invalid_cases``, ``worst_gaps`` (text for the next prompt).
* ``evaluate_stage1(path)``: the gate for ``cascade_evaluation``, on
  ``quick_suites`` (small, about a second): ``combined_score`` 1 when the program
  loads and every case is valid, else 0 — so any ``cascade_thresholds[0]`` in
  (0, 1] passes exactly the valid programs, and a rejected program keeps 0.
* ``evaluate_stage2(path)``: the same as ``evaluate``; OpenEvolve merges it over
  stage 1, so its ``combined_score`` is the one that counts.

Only a bad kvopt setting raises (``KvoptError``, at the first call); a program
that crashes, hangs, cheats or returns garbage gets a score and feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kvopt.integrations.loop import LoopConfig, ProgramScore, config_from, score_program

try:
    from openevolve.evaluation_result import EvaluationResult
except ImportError:  # kvopt without OpenEvolve: the same shape, so the functions still work and test

    @dataclass
    class EvaluationResult:  # type: ignore[no-redef]
        metrics: dict[str, float]
        artifacts: dict[str, Any] = field(default_factory=dict)


def as_result(score: ProgramScore) -> EvaluationResult:
    return EvaluationResult(metrics={k: float(v) for k, v in score.metrics.items()}, artifacts=dict(score.feedback))


def full_evaluation(program_path: str, config: LoopConfig) -> EvaluationResult:
    return as_result(score_program(program_path, config.suites, config, stage="full"))


def gate_evaluation(program_path: str, config: LoopConfig) -> EvaluationResult:
    score = score_program(program_path, config.quick_suites, config, stage="gate")
    gate = 1.0 if score.passed else 0.0
    metrics = {**score.metrics, "combined_score": gate, "stage1_passed": gate}
    feedback = dict(score.feedback)
    if not score.passed:
        feedback["kvopt_summary"] = ("Rejected at stage 1 (the small suite): every case must be valid.\n"
                                     + feedback.get("kvopt_summary", ""))
    return EvaluationResult(metrics={k: float(v) for k, v in metrics.items()}, artifacts=feedback)


def configured(**settings: Any) -> tuple[Callable[[str], EvaluationResult], ...]:
    """``(evaluate, evaluate_stage1, evaluate_stage2)`` with ``LoopConfig`` settings (environment still wins).

    The settings are checked now, so a typo fails when OpenEvolve loads the evaluator.
    """
    config_from(**settings)

    def evaluate(program_path: str) -> EvaluationResult:
        return full_evaluation(program_path, config_from(**settings))

    def evaluate_stage1(program_path: str) -> EvaluationResult:
        return gate_evaluation(program_path, config_from(**settings))

    def evaluate_stage2(program_path: str) -> EvaluationResult:
        return full_evaluation(program_path, config_from(**settings))

    return evaluate, evaluate_stage1, evaluate_stage2


evaluate, evaluate_stage1, evaluate_stage2 = configured()
