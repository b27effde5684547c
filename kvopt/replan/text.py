"""Human-readable output of a re-placement: summary, moves, plan, frontier (tables)."""

from __future__ import annotations

from typing import Any

from kvopt.model import Instance
from kvopt.replan.core import ReplanAnswer, answer_json, point_json
from kvopt.tables import format_table


def format_replan(instance: Instance, answer: ReplanAnswer) -> str:
    data = answer_json(instance, answer)
    lines = [f"instance   {instance.name}", f"method     {data['method']}", f"status     {data['status']}",
             f"budget     {data['budget'] or 'none'}",
             f"current    peak {_num(data['current_peak_kvpr'])}"]
    if answer.result.placement is not None:
        gap = data.get("gap")
        lines.append(f"new        peak {_num(data['peak_kvpr'])}  (lower bound {_num(data.get('lower_bound'))}, "
                     f"gap {_num(gap)})")
        lines.append(f"moves      {data['num_moves']} ({data['moved_gb']:g} GB)")
        if "binding_scenario" in data:
            lines.append(f"scenarios  binding {data['binding_scenario']!r}: " +
                         ", ".join(f"{k} {_num(v)}" for k, v in data["scenario_peaks"].items()))
    else:
        lines.append(f"no placement: {data.get('reason', '')}")
    if data.get("plan"):
        lines += ["", format_plan(data["plan"])]
    if data.get("plan_error"):
        lines += ["", f"no migration order: {data['plan_error']}"]
    if answer.frontier:
        lines += ["", format_frontier([point_json(instance, p) for p in answer.frontier])]
    return "\n".join(lines)


def format_plan(plan: list[dict[str, Any]]) -> str:
    rows = [[k + 1, s["action"], s["model"], _gpu(s["from"]), _gpu(s["to"]), "buffer" if s.get("via_buffer") else ""]
            for k, s in enumerate(plan)]
    return format_table(["step", "action", "model", "from", "to", "note"], rows, align="rlllll")


def format_frontier(points: list[dict[str, Any]]) -> str:
    rows = [[p["max_moves"], p["status"], p["peak_kvpr"], p.get("num_moves"), p.get("moved_gb"), p["lower_bound"]]
            for p in points]
    return format_table(["max moves", "status", "peak", "moves", "moved GB", "lower bound"], rows, align="rlrrrr")


def _gpu(value: Any) -> str:
    return "-" if value is None else f"GPU {value}"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.6g}"
