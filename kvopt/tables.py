"""Plain-text tables for people (the CLI's default output)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from kvopt.evaluate import Evaluation, exact_gpu_kvpr
from kvopt.model import Instance, Result


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A fixed-width table; ``align`` is one char per column, ``l`` or ``r`` (numbers right by default)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for j, text in enumerate(row):
            widths[j] = max(widths[j], len(text))
    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][j], (int, float)) else "l" for j in range(len(headers)))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if a == "r" else v.ljust(w) for v, w, a in zip(values, widths, align)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.6g}"
    return str(value)


# A placement table lists every GPU up to this many; past it, the GPUs at the peak and the
# next-worst ones (``--all`` prints every row).
MAX_GPU_ROWS = 24
WORST_GPU_ROWS = 10
MAX_NAME_CHARS = 24
MAX_MODELS_CHARS = 60
PEAK_MARK = "<- peak"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters in the middle (names often differ only at the end)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def models_cell(names: Sequence[str]) -> str:
    """The model names of one GPU, each shortened, the list cut with a ``(+k more)`` count."""
    shown: list[str] = []
    for k, name in enumerate(names):
        rest = len(names) - k
        candidate = ", ".join([*shown, shorten(name, MAX_NAME_CHARS)])
        suffix = f" (+{rest - 1} more)" if rest > 1 else ""
        if shown and len(candidate) + len(suffix) > MAX_MODELS_CHARS:
            return ", ".join(shown) + f" (+{rest} more)"
        shown.append(shorten(name, MAX_NAME_CHARS))
    return ", ".join(shown)


def peak_gpus(instance: Instance, gpu_of: Sequence[int]) -> set[int]:
    """Every GPU whose exact KVPR equals the exact peak (which may be ``math.inf``)."""
    values = exact_gpu_kvpr(instance, gpu_of)
    peak = max(values)
    return {g for g, v in enumerate(values) if v == peak}


def rows_to_show(evaluation: Evaluation, at_peak: set[int], show_all: bool) -> list[int]:
    """GPU indices to list: all of them, or (many GPUs) the peak ones and the next-worst, in GPU order."""
    num_gpus = len(evaluation.gpu_kvpr)
    if show_all or num_gpus <= MAX_GPU_ROWS:
        return list(range(num_gpus))
    by_kvpr = sorted(range(num_gpus), key=lambda g: (-evaluation.gpu_kvpr[g], g))
    return sorted(set(by_kvpr[:WORST_GPU_ROWS]) | at_peak)


def format_placement(instance: Instance, result: Result, evaluation: Evaluation, *, show_all: bool = False) -> str:
    """Per-GPU memory, demand and KVPR, every GPU at the peak marked, then the result's summary.

    With more than ``MAX_GPU_ROWS`` GPUs only the GPUs at the peak and the
    ``WORST_GPU_ROWS`` highest-KVPR ones are listed unless ``show_all``; long model
    names and long model lists are shortened.
    """
    gpu_of = result.placement.gpu_of  # type: ignore[union-attr]
    at_peak = peak_gpus(instance, gpu_of)
    names_on: list[list[str]] = [[] for _ in range(instance.num_gpus)]
    for model, g in zip(instance.models, gpu_of):
        names_on[g].append(model.name)
    shown = rows_to_show(evaluation, at_peak, show_all)
    rows = [[g, instance.gpu_mem_gb[g], evaluation.used_mem_gb[g], evaluation.demand[g], evaluation.gpu_kvpr[g],
             PEAK_MARK if g in at_peak else "", models_cell(names_on[g])] for g in shown]
    table = format_table(["gpu", "mem_gb", "used_gb", "demand", "kvpr", "", "models"], rows, align="rrrrrll")
    if len(shown) < instance.num_gpus:
        table += (f"\n({len(shown)} of {instance.num_gpus} GPUs shown: the {len(at_peak)} at the peak and the "
                  f"highest KVPR; --all lists every GPU)")
    return table + "\n\n" + format_summary(result)


def format_summary(result: Result) -> str:
    fields: list[tuple[str, Any]] = [("instance", result.instance), ("method", result.method),
                                     ("status", result.status)]
    if result.peak_kvpr is not None:
        exact = f"  (= {result.peak_kvpr_exact})" if result.peak_kvpr_exact is not None else ""
        fields.append(("peak_kvpr", f"{_cell(result.peak_kvpr)}{exact}"))
    if result.lower_bound is not None:
        fields.append(("lower bound", _cell(result.lower_bound)))
    if result.gap is not None:
        # The gap is always peak / certified lower bound - 1; say whether that bound is the proven optimum.
        against = "against the proven optimum" if result.status == "optimal" else \
            "against the lower bound; optimum not proven"
        fields.append(("gap", (f"{result.gap:.4%}" if math.isfinite(result.gap) else "inf") + f"  ({against})"))
    fields.extend((key, result.details[key]) for key in ("auto_choice", "backend", "model", "reason")
                  if key in result.details)
    fields.append(("seconds", f"{result.seconds:.3f}"))
    width = max(len(key) for key, _ in fields) + 1
    return "\n".join(f"{key:<{width}} {value}" for key, value in fields)
