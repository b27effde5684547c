"""Report figures (matplotlib, Agg backend), each returned as PNG bytes.

* ``gap_per_case``: gap of every method on every case, one panel per suite;
  invalid results are red crosses on the top edge.
* ``gap_distribution``: share of cases with gap <= x, per method (further up and
  to the left is better).
* ``time_vs_size``: seconds per case against the number of models.
* ``worst_case_gpus``: KVPR per GPU of each method on the case with the largest
  gap, with the reference as a dashed line.
* ``move_frontier``: for suites whose references store an exact (moves, peak)
  frontier (``replan``), the best peak with at most K moves relative to the peak
  of the current placement (K = 0), one line per case; hollow markers are points
  not proven optimal.
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 100
MARKERS = "os^DvP*Xh<>"


def _colors(methods: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _finite_gap(record: Mapping[str, Any]) -> float | None:
    gap = record.get("gap")
    if gap is None or not record.get("valid"):
        return None
    gap = float(gap)
    return gap if math.isfinite(gap) else None


def _finite_or_nan(value: Any) -> float:
    number = float(value) if value is not None else math.nan
    return number if math.isfinite(number) else math.nan


def _empty(message: str, size: tuple[float, float] = (7.0, 2.0)) -> bytes:
    fig, ax = plt.subplots(figsize=size)
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return _png(fig)


def gap_per_case(records: Sequence[Mapping[str, Any]], suites: Sequence[str], methods: Sequence[str]) -> bytes:
    """One panel per suite: x = case, y = gap (%) per method."""
    if not any(_finite_gap(r) is not None for r in records):
        return _empty("no gaps: no reference value is known for any case")
    colors = _colors(methods)
    fig, axes = plt.subplots(len(suites), 1, figsize=(11, 2.6 * len(suites) + 0.6), squeeze=False)
    for ax, suite in zip(axes[:, 0], suites):
        cases = sorted({r["case"] for r in records if r["suite"] == suite})
        x_of = {c: i for i, c in enumerate(cases)}
        finite = [_finite_gap(r) for r in records if r["suite"] == suite]
        top = max([100 * g for g in finite if g is not None] + [1.0]) * 1.08
        for k, method in enumerate(methods):
            chosen = [r for r in records if r["suite"] == suite and r["method"] == method]
            pts = [(x_of[r["case"]], 100 * g) for r in chosen if (g := _finite_gap(r)) is not None]
            # No finite gap although a reference exists: invalid, or an infinite peak.
            bad = [x_of[r["case"]] for r in chosen
                   if not r["valid"] or (r.get("gap") is not None and _finite_gap(r) is None)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker=MARKERS[k % len(MARKERS)], markersize=4, linewidth=0.8,
                        color=colors[method], label=method, alpha=0.9)
            if bad:
                ax.scatter(bad, [top] * len(bad), marker="x", color=colors[method], zorder=5, s=40,
                           label=f"{method}: invalid or inf")
        ax.set_title(f"{suite}: gap to reference per case", fontsize=10)
        ax.set_ylabel("gap (%)")
        ax.set_xlim(-0.5, max(len(cases) - 0.5, 0.5))
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        ax.grid(alpha=0.3)
        step = max(1, len(cases) // 25)
        ax.set_xticks(range(0, len(cases), step))
        ax.set_xticklabels([cases[i].rsplit("_", 1)[-1] for i in range(0, len(cases), step)], fontsize=7)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("case")
    fig.tight_layout()
    return _png(fig)


def gap_distribution(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> bytes:
    """Empirical CDF of the gap per method; invalid cases never reach 100 %."""
    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    for k, method in enumerate(methods):
        chosen = [r for r in records if r["method"] == method]
        gaps = sorted(100 * g for r in chosen if (g := _finite_gap(r)) is not None)
        if not gaps or not chosen:
            continue
        n = len(chosen)
        xs = [gaps[0]] + gaps
        ys = [0.0] + [(i + 1) / n for i in range(len(gaps))]
        ax.step(xs, ys, where="post", color=colors[method], label=f"{method} ({len(gaps)}/{n} with a gap)",
                linewidth=1.5, linestyle=["-", "--", "-.", ":"][k % 4])
        plotted = True
    if not plotted:
        plt.close(fig)
        return _empty("no gaps: no reference value is known for any case")
    ax.set_xlabel("gap to reference (%)")
    ax.set_ylabel("share of cases with gap <= x")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("gap distribution (up and left is better)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def time_vs_size(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> bytes:
    """Seconds per case against the number of models (log scale)."""
    if not records:
        return _empty("no results")
    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, method in enumerate(methods):
        chosen = [r for r in records if r["method"] == method]
        xs = [r["num_models"] for r in chosen]
        ys = [max(float(r["seconds"]), 1e-6) for r in chosen]
        ax.scatter(xs, ys, s=14, color=colors[method], marker=MARKERS[k % len(MARKERS)], label=method, alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("models in the instance")
    ax.set_ylabel("seconds per case")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("time vs instance size", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def worst_case(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The valid record with the largest finite gap (ties: first in record order)."""
    best: Mapping[str, Any] | None = None
    for r in records:
        gap = _finite_gap(r)
        if gap is not None and (best is None or gap > float(best["gap"])):
            best = r
    return best


def worst_case_gpus(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> bytes:
    """KVPR per GPU of every method on the worst case."""
    worst = worst_case(records)
    if worst is None:
        return _empty("no gaps: no worst case to show")
    colors = _colors(methods)
    same_case = [r for r in records if r["suite"] == worst["suite"] and r["case"] == worst["case"] and r["valid"]]
    num_gpus = int(worst["num_gpus"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * num_gpus + 2), 4))
    width = 0.8 / max(1, len(same_case))
    for k, r in enumerate(sorted(same_case, key=lambda r: methods.index(r["method"]))):
        values = [_finite_or_nan(v) for v in r["gpu_kvpr"]]
        xs = [g - 0.4 + width * (k + 0.5) for g in range(num_gpus)]
        ax.bar(xs, values, width=width, color=colors[r["method"]], label=f"{r['method']} (peak {r['peak_kvpr']:.4g})")
    if worst.get("reference") is not None:
        ax.axhline(float(worst["reference"]), color="black", linestyle="--", linewidth=1,
                   label=f"reference ({worst['reference_status']}) {float(worst['reference']):.4g}")
    ax.set_xticks(range(num_gpus))
    ax.set_xlabel("GPU")
    ax.set_ylabel("KVPR")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(f"worst case {worst['suite']}/{worst['case']}: {worst['method']} "
                 f"gap {100 * float(worst['gap']):.2f}%", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def move_frontier(frontiers: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Peak with at most K moves / peak with none, per case (see the module docstring)."""
    if not frontiers:
        return _empty("no stored move frontiers")
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    cmap = plt.get_cmap("tab10")
    for i, (case, points) in enumerate(sorted(frontiers.items())):
        start = _finite_or_nan(points[0]["peak"]) if points else math.nan
        if not points or not start > 0:
            continue
        moves = [p["max_moves"] for p in points]
        ratio = [_finite_or_nan(p["peak"]) / start for p in points]
        color = cmap(i % 10)
        ax.plot(moves, ratio, "-", color=color, label=case, linewidth=1)
        for k, r, p in zip(moves, ratio, points):
            ax.plot([k], [r], MARKERS[0], color=color, fillstyle="full" if p["status"] == "optimal" else "none")
    ax.set_xlabel("move budget K (models relocated)")
    ax.set_ylabel("best peak KVPR / current peak")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)
