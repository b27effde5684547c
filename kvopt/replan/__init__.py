"""Re-placement of a running cluster: move budgets, the moves-vs-peak frontier, migration order, scenarios."""

from kvopt.replan.core import (REPLAN_METHODS, ReplanAnswer, answer_json, best_within_budget, current_peak,
                               frontier, point_json, replan)
from kvopt.replan.migration import SEMANTICS, MigrationError, Step, plan_migration, replay_plan
from kvopt.replan.moves import Budget, make_budget, move_cost, moves_between

__all__ = ["REPLAN_METHODS", "SEMANTICS", "Budget", "MigrationError", "ReplanAnswer", "Step", "answer_json",
           "best_within_budget", "current_peak", "frontier", "make_budget", "move_cost", "moves_between",
           "plan_migration", "point_json", "replan", "replay_plan"]
