"""The ``kvopt`` command: argument parsing only; each command calls one library function.

Exit codes: 0 ok, 1 a failed check or regression, 2 bad input (the message names
the model/field and the reason; never a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kvopt.model import KvoptError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

DESCRIPTION = """\
Place LLMs on GPUs so that the peak KV-cache pressure (KVPR = demand / free
memory, per GPU) is as low as possible, and prove how good a placement is.

Input: an instance JSON ({"gpu_mem_gb": [...], "models": [{"name", "size_gb",
"req_rate", "slo"}, ...]}), a models CSV with --gpus, or - for stdin."""

EPILOG = """\
examples:
  kvopt solve cluster.json                       place with the fast pipeline
  kvopt solve cluster.json --method exact        prove the optimum (or a bound and gap)
  kvopt solve models.csv --gpus 8 --mem-gb 80    models from a spreadsheet
  kvopt evaluate my_placer.py --suite adrs50     score a program against the optima
  kvopt report --out reports/mine                gap report (Markdown, HTML, JSON, CSV)

exit status: 0 ok, 1 a failed check / regression / proven infeasible,
2 bad input (one line on stderr naming the field and the reason)."""


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help (unless the help already states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default in ("", argparse.SUPPRESS)
        if "%(default)" in text or "default:" in text or no_default or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _TopHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """The top-level help keeps the line breaks of its description and examples."""


def _parser(sub: argparse._SubParsersAction, name: str, help_text: str, description: str | None = None
            ) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=description or help_text[:1].upper() + help_text[1:] + ".",
                          formatter_class=_HelpFormatter)


def output_file(path: str, option: str = "--out") -> Path:
    """Check that ``path`` can be written as a file: its folder exists and it is not a folder itself."""
    out = Path(path)
    if out.is_dir():
        raise KvoptError(f"{option} {path}: is a folder, expected a file name")
    parent = out.parent
    if not parent.is_dir():
        raise KvoptError(f"{option} {path}: folder {parent} does not exist")
    return out


def output_folder(path: str, option: str = "--out") -> Path:
    """Check that ``path`` can be used as an output folder (it may not exist yet; it must not be a file)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise KvoptError(f"{option} {path}: exists and is not a folder")
    return out


def _write_json_file(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1))


def _load(args: argparse.Namespace):
    from kvopt.io import load_instance

    return load_instance(args.instance, gpus=getattr(args, "gpus", None), mem_gb=getattr(args, "mem_gb", 80))


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "json", False) and sys.stderr.isatty()


class BracketProgress:
    """One self-overwriting stderr line for a long exact solve: ``lower <= OPT <= upper``, elapsed.

    Quiet unless ``enabled`` (a terminal, not ``--json``) and the solve has run for
    ``after_s`` seconds, so quick solves print nothing.  The bracket comes from the
    driver's progress events; a ticker thread keeps the elapsed time moving while one
    backend call runs.  The line is erased at the end.
    """

    def __init__(self, enabled: bool, after_s: float = 1.0, stream: Any = None, tick_s: float = 0.5,
                 label: str = "kvopt") -> None:
        self.enabled = enabled
        self.after_s = after_s
        self.tick_s = tick_s
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.width = 0
        self.state = f"{label}: solving"
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    @property
    def callback(self) -> Callable[[Any], None] | None:
        return self.show if self.enabled else None

    def show(self, event: Any) -> None:
        """Record the bracket of a ``kvopt.exact.bisection.ExactProgress`` (other events: the peak) and draw."""
        if hasattr(event, "lower"):
            upper = "inf" if event.upper is None else f"{float(event.upper):.8g}"
            self.state = f"exact: {float(event.lower):.8g} <= OPT <= {upper}, step {event.iteration}"
        elif event is not None:
            self.state = f"{type(event).__name__}: peak {getattr(event, 'peak_kvpr', '?')}"
        self.draw()

    def draw(self) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed < self.after_s:
            return
        text = f"{self.state}  ({elapsed:.1f} s)"
        with self.lock:
            self.stream.write("\r" + text.ljust(self.width))
            self.stream.flush()
            self.width = len(text)

    def _tick(self) -> None:
        while not self.stopped.wait(self.tick_s):
            self.draw()

    def __enter__(self) -> "BracketProgress":
        if self.enabled:
            self.ticker = threading.Thread(target=self._tick, name="kvopt-progress", daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join()
        with self.lock:
            if self.width:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
                self.width = 0


# -- solve -------------------------------------------------------------------------
def _add_instance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance", help="instance JSON, a models CSV (header name,size_gb,req_rate,slo) with --gpus, "
                                    "or - for stdin (JSON; CSV with --gpus)")
    p.add_argument("--gpus", type=int, metavar="N", help="number of GPUs (CSV input only)")
    p.add_argument("--mem-gb", type=float, default=80, metavar="GB", help="memory per GPU for CSV input")


def add_solve_parser(sub: argparse._SubParsersAction) -> None:
    from kvopt.exact.bisection import BACKENDS, SOLVERS
    from kvopt.solve import method_names

    p = _parser(sub, "solve", "place the models of one instance",
                "Place the models of one instance on its GPUs and print the per-GPU table (memory, demand, "
                "KVPR, the GPUs at the peak marked), the peak, the certified lower bound and the gap.")
    _add_instance_arguments(p)
    p.add_argument("--method", default="pipeline", choices=method_names(),
                   help="greedy: Prism's algorithm; pipeline: fast heuristics; exact: proven optimum "
                        "(bisection); mccormick: one MILP; auto: exact up to 40 models, else pipeline; "
                        "lns: exact neighbourhood search for big clusters")
    # Not given = None: solve() rejects an option the method does not use, so defaults are stated here.
    p.add_argument("--backend", choices=list(BACKENDS),
                   help="exact solver backend (exact, auto, lns; default: auto)")
    p.add_argument("--solver", choices=list(SOLVERS), help="MILP solver (exact, auto, mccormick; default: highs)")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="seconds for the whole solve (exact, auto, mccormick, lns; default: 60)")
    p.add_argument("--seed", type=int, help="random seed (exact, auto, mccormick, lns; default: 0)")
    p.add_argument("--out", metavar="FILE", help="also write the placement JSON to FILE")
    p.add_argument("--json", action="store_true", help="print the placement JSON instead of the table")
    p.add_argument("--all", action="store_true", help="list every GPU (large clusters show the peak ones only)")
    p.set_defaults(func=cmd_solve)


def cmd_solve(args: argparse.Namespace) -> int:
    from kvopt.evaluate import evaluate
    from kvopt.io import result_to_json
    from kvopt.solve import METHOD_OPTIONS, solve
    from kvopt.tables import format_placement, format_summary

    out = output_file(args.out) if args.out else None
    instance = _load(args)
    uses_progress = "progress" in METHOD_OPTIONS[args.method]
    with BracketProgress(enabled=_progress_enabled(args) and uses_progress, label=args.method) as progress:
        result = solve(instance, args.method, backend=args.backend, solver=args.solver,
                       time_limit_s=args.time_limit, seed=args.seed,
                       progress=progress.callback if uses_progress else None)
    payload = result_to_json(instance, result)
    if out:
        _write_json_file(out, payload)
    if args.json:
        _print_json(payload)
    elif result.placement is not None:
        print(format_placement(instance, result, evaluate(instance, result.placement), show_all=args.all))
    else:
        print(format_summary(result))
    # A valid instance is never exit 2: no placement (proven or not) is a failed solve, exit 1.
    return EXIT_OK if result.success else EXIT_FAILED


# -- check -------------------------------------------------------------------------
def add_check_parser(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "check", "validate and evaluate a placement JSON against an instance",
                "Check that every model is placed once within GPU memory (exact arithmetic) and print its "
                "per-GPU KVPR. Exit 1 when the placement is invalid.")
    _add_instance_arguments(p)
    p.add_argument("placement", help="placement JSON with an 'assignment' {model: gpu} (as solve --out writes), "
                                     "or - for stdin")
    p.add_argument("--json", action="store_true", help="print {valid, peak_kvpr, gpu_kvpr, ...} as JSON")
    p.add_argument("--all", action="store_true", help="list every GPU (large clusters show the peak ones only)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from kvopt.evaluate import evaluate, format_fraction
    from kvopt.io import load_placement
    from kvopt.model import PlacementError, Result
    from kvopt.tables import format_placement

    if args.instance == "-" and args.placement == "-":
        raise KvoptError("instance and placement cannot both be read from stdin (-)")
    instance = _load(args)
    try:
        placement = load_placement(instance, args.placement)
    except PlacementError as exc:
        if args.json:
            _print_json({"valid": False, "reason": str(exc)})
        else:
            print(f"invalid placement: {exc}")
        return EXIT_FAILED
    ev = evaluate(instance, placement)
    if args.json:
        _print_json({"valid": True, "peak_kvpr": ev.peak_kvpr, "peak_kvpr_exact": format_fraction(ev.peak_kvpr_exact),
                     "gpu_kvpr": list(ev.gpu_kvpr), "peak_gpu": ev.peak_gpu})
    else:
        result = Result(instance.name, "check", "feasible", placement, ev.peak_kvpr, ev.peak_kvpr_exact)
        print("valid placement\n")
        print(format_placement(instance, result, ev, show_all=args.all))
    return EXIT_OK


# -- re-placement ------------------------------------------------------------------
def add_replan_parser(sub: argparse._SubParsersAction) -> None:
    from kvopt.exact.bisection import SOLVERS
    from kvopt.replan import REPLAN_METHODS, SEMANTICS
    from kvopt.replan.moves import MOVE_COSTS

    p = _parser(sub, "replan", "re-place a running cluster within a move budget",
                "Best placement within a move budget for an instance whose models carry 'current_gpu' "
                "(and optionally 'scenarios'): the moves, the peak before and after, and a migration order "
                "that never overflows a GPU. Exit 0 ok, 1 no placement or no safe order, 2 bad input.")
    _add_instance_arguments(p)
    p.add_argument("--max-moves", metavar="K", help="at most K relocated models (no budget when absent)")
    p.add_argument("--max-moved-gb", metavar="GB", help="at most GB of weights reloaded (move cost = size)")
    p.add_argument("--move-cost", default="count", choices=list(MOVE_COSTS),
                   help="count: one per moved model; size: its GB (use with --max-moved-gb)")
    p.add_argument("--method", default="auto", choices=list(REPLAN_METHODS),
                   help="pipeline: budget-aware local search; exact: bisection with the budget row "
                        "(proven); auto: exact up to 40 models")
    p.add_argument("--backend", default="auto", choices=["auto", "cpsat", "milp"],
                   help="exact backend (set partitioning cannot carry the budget: auto uses CP-SAT)")
    p.add_argument("--solver", default="highs", choices=list(SOLVERS), help="MILP solver of --backend milp")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="seconds per exact solve")
    p.add_argument("--migration", default="copy", choices=list(SEMANTICS),
                   help="copy: a moved model holds memory on both GPUs until loaded; stop-start: freed first")
    p.add_argument("--pareto", action="store_true",
                   help="the exact (moves, peak) frontier for K = 0, 1, ... up to K* (or --max-moves)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the exact backend")
    p.add_argument("--out", metavar="FILE", help="also write the placement JSON to FILE")
    p.add_argument("--json", action="store_true", help="print the placement JSON instead of the tables")
    p.set_defaults(func=cmd_replan)


def cmd_replan(args: argparse.Namespace) -> int:
    from kvopt.replan import answer_json, frontier, make_budget, replan
    from kvopt.replan.core import ReplanAnswer, current_peak, migration_plan
    from kvopt.replan.migration import check_semantics
    from kvopt.replan.moves import parse_budget_option
    from kvopt.replan.text import format_replan

    max_moves = parse_budget_option(args.max_moves, "--max-moves", True) if args.max_moves is not None else None
    max_gb = parse_budget_option(args.max_moved_gb, "--max-moved-gb", False) \
        if args.max_moved_gb is not None else None
    budget = make_budget(max_moves=max_moves, max_moved_gb=max_gb, move_cost=args.move_cost)
    check_semantics(args.migration)
    if not args.time_limit > 0:
        raise KvoptError(f"--time-limit: must be > 0, got {args.time_limit}")
    out = output_file(args.out) if args.out else None
    instance = _load(args)
    if args.pareto:
        if budget is not None and budget.cost != "count":
            raise KvoptError("--pareto walks the number of moves: use --max-moves (not --max-moved-gb)")
        points, _ = frontier(instance, max_moves=max_moves, backend=args.backend, solver=args.solver,
                             time_limit_s=args.time_limit, seed=args.seed,
                             method="exact" if args.method == "auto" else args.method)
        last = points[-1]
        plan, error = migration_plan(instance, last, args.migration)
        answer = ReplanAnswer(last, budget, current_peak(instance), plan, error, points)
    else:
        answer = replan(instance, budget, method=args.method, backend=args.backend, solver=args.solver,
                        time_limit_s=args.time_limit, seed=args.seed, migration=args.migration)
    payload = answer_json(instance, answer)
    if out is not None:
        out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload, indent=1) if args.json else format_replan(instance, answer))
    failed = answer.result.placement is None or answer.plan_error is not None
    return EXIT_FAILED if failed else EXIT_OK


def add_plan_moves_parser(sub: argparse._SubParsersAction) -> None:
    from kvopt.replan import SEMANTICS

    p = _parser(sub, "plan-moves", "a safe migration order from the current placement to a target",
                "Order the moves from the instance's current placement (current_gpu) to TARGET (a placement "
                "JSON) so that no GPU overflows on the way. Exit 1 when no order exists.")
    _add_instance_arguments(p)
    p.add_argument("target", help="placement JSON with 'assignment' {model: gpu}")
    p.add_argument("--migration", default="copy", choices=list(SEMANTICS),
                   help="copy: a moved model holds memory on both GPUs until loaded; stop-start: freed first")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan_moves)


def cmd_plan_moves(args: argparse.Namespace) -> int:
    from kvopt.io import load_placement
    from kvopt.replan import MigrationError, plan_migration
    from kvopt.replan.migration import check_semantics
    from kvopt.replan.moves import require_current
    from kvopt.replan.text import format_plan

    check_semantics(args.migration)
    instance = _load(args)
    require_current(instance)
    target = load_placement(instance, args.target)
    try:
        steps = plan_migration(instance, target.gpu_of, args.migration)
    except MigrationError as exc:
        if args.json:
            _print_json({"possible": False, "reason": str(exc)})
        else:
            print(f"no safe migration order: {exc}")
        return EXIT_FAILED
    plan = [s.as_json() for s in steps]
    if args.json:
        _print_json({"possible": True, "migration": args.migration, "plan": plan})
    else:
        print(format_plan(plan) if plan else "nothing to move")
    return EXIT_OK


# -- suites ------------------------------------------------------------------------
def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    from kvopt.suites import SUITES

    p = _parser(sub, "generate", "write a built-in suite as instance JSON files")
    p.add_argument("--suite", required=True, choices=sorted(SUITES), help="suite to write")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from kvopt.suites import write_suite

    paths = write_suite(args.suite, args.out)
    print(f"wrote {len(paths)} instances to {args.out}")
    return EXIT_OK


def add_suites_parser(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "suites", "list the built-in suites and whether their reference optima are stored")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_suites)


def cmd_suites(args: argparse.Namespace) -> int:
    from kvopt.suites import SUITES, load_reference
    from kvopt.tables import format_table

    rows = []
    for suite in SUITES.values():
        rows.append({"name": suite.name, "small": suite.small, "reference": bool(load_reference(suite.name)),
                     "description": suite.description})
    if args.json:
        _print_json(rows)
    else:
        print(format_table(["suite", "small", "reference", "description"],
                           [[r["name"], "yes" if r["small"] else "no", "yes" if r["reference"] else "no",
                             r["description"]] for r in rows], align="llll"))
    return EXIT_OK


# -- exact-solver tools ------------------------------------------------------------
def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "export", "write the feasibility model at T (or the McCormick model) as LP/MPS",
                "Write the integer feasibility model 'every KVPR <= T' (or the McCormick MILP) for an "
                "external solver such as Gurobi or CPLEX.")
    _add_instance_arguments(p)
    p.add_argument("--T", dest="target", required=True, metavar="VALUE", help="target KVPR, e.g. 0.04 or 1/25")
    p.add_argument("--format", choices=["lp", "mps"], default="lp", help="file format")
    p.add_argument("--model", choices=["assignment", "mccormick"], default="assignment", help="which model")
    p.add_argument("--out", metavar="FILE", help="output file (default: <instance>.<format>)")
    p.set_defaults(func=cmd_export)


def _parse_target(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise KvoptError(f"--T: expected a positive number or fraction p/q, got {text!r}") from None
    if value <= 0:
        raise KvoptError(f"--T: must be > 0, got {text!r}")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    from kvopt.exact.export import export_model

    instance = _load(args)
    target = _parse_target(args.target)
    out = output_file(args.out or f"{instance.name}.{args.format}")
    export_model(instance, target, out, fmt=args.format, model=args.model)
    print(f"wrote {args.model} model at T={target} to {out}")
    return EXIT_OK


def add_reference_parser(sub: argparse._SubParsersAction) -> None:
    from kvopt.exact.bisection import BACKENDS
    from kvopt.suites import SUITES

    p = _parser(sub, "reference", "solve every case of a suite exactly and store reference.json")
    p.add_argument("--suite", required=True, choices=sorted(SUITES), help="suite to solve")
    p.add_argument("--out", metavar="DIR", help="folder to write reference.json into (and the instances, when it "
                                                "has none); default: ./instances/SUITE")
    p.add_argument("--backend", default="auto", choices=list(BACKENDS), help="exact solver backend")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="seconds per case")
    p.add_argument("--json", action="store_true", help="print the reference document as JSON")
    p.set_defaults(func=cmd_reference)


def cmd_reference(args: argparse.Namespace) -> int:
    from kvopt.exact.reference import write_reference

    out = output_folder(args.out) if args.out else Path("instances") / args.suite
    path, data = write_reference(args.suite, out, backend=args.backend, time_limit_s=args.time_limit,
                                 progress=_progress_enabled(args))
    cases = data["cases"]
    optimal = sum(1 for c in cases.values() if c["status"] == "optimal")
    if args.json:
        _print_json(data)
    else:
        print(f"{args.suite}: {optimal}/{len(cases)} proven optimal; wrote {path}")
    return EXIT_OK


# -- evaluation of programs, reports, regressions ----------------------------------
def add_containment_options(p: argparse.ArgumentParser) -> None:
    """Limits and isolation of untrusted program calls (evaluate, report)."""
    p.add_argument("--timeout", type=float, default=10.0,
                   help="wall seconds per program call, load included (default: 10)")
    p.add_argument("--memory-mb", type=int, default=2048,
                   help="memory per program call in MB, all its processes together (default: 2048; "
                        "from 256 to this machine's memory)")
    p.add_argument("--isolation", choices=["auto", "namespaces", "landlock", "none"], default="auto",
                   help="containment of program calls: bubblewrap namespaces (+ Landlock), Landlock only, or "
                        "none; auto = the strongest available, and an error if there is none (default: auto)")
    p.add_argument("--no-isolation", action="store_true",
                   help="run programs without containment (same as --isolation none; only for trusted code)")


def limits_from(args: argparse.Namespace):
    """The per-call ``Limits`` of the options (validated: exit 2 on nonsense)."""
    from kvopt.bench.sandbox import Limits

    return Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)


def isolation_from(args: argparse.Namespace) -> str:
    return "none" if args.no_isolation else args.isolation


def report_interruption(stop: Any) -> int:
    """A partial summary on stderr for a run stopped by Ctrl-C/SIGTERM; the exit code 128 + signal."""
    from kvopt.bench.report import summary_table
    from kvopt.tables import format_table

    document = stop.document
    done = sum(1 for r in document["cases"] if r["role"] == "method")
    print(f"kvopt: interrupted by {document['interrupted']}: {done} case(s) finished; running calls were killed.",
          file=sys.stderr)
    if done:
        print(format_table(*summary_table(document), align="lrrrrrrrrr"), file=sys.stderr)
    return stop.exit_code


def integrity_exit(document: Any) -> int | None:
    from kvopt.bench.evaluate import integrity_problem

    problem = integrity_problem(document)
    if problem is None:
        return None
    print(f"kvopt: error: {problem}", file=sys.stderr)
    return EXIT_FAILED


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a placement program against proven optima",
                       description="Run PROGRAM on every case of the suites (each call in a separate, limited "
                                   "process) and report per case: valid or why not, peak KVPR, reference "
                                   "optimum, gap. Exit 0 when every case is valid, 1 otherwise, 2 for bad input.")
    p.add_argument("program", nargs="+",
                   help="PROGRAM.py defining compute_model_placement(gpu_num, models), "
                        "a kvopt heuristic name (greedy, pipeline), or pkg.module:function; several "
                        "programs or a folder of them are evaluated in one run and ranked by score")
    p.add_argument("--suite", action="append", help="suite name or folder of instance files "
                                                    "(repeatable; default: adrs50)")
    add_containment_options(p)
    p.add_argument("--solve-missing", action="store_true",
                   help="solve cases without a stored reference optimum exactly (slow on big cases)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per exact solve (default: 60)")
    p.add_argument("--jobs", type=int, help="cases run in parallel (default: min(2, CPUs))")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local processes, or Ray tasks (needs `pip install kvopt[ray]`; default: local)")
    p.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    p.add_argument("--no-cache", action="store_true",
                   help="with several programs: run every one, even those already scored with the same source, "
                        "suites and settings (default: reuse the user cache, ~/.cache/kvopt/evaluations)")
    p.add_argument("--json", action="store_true", help="print {summary, cases} as JSON (several programs: "
                                                       "{programs: ranked rows, ...})")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kvopt.bench.evaluate import all_valid, evaluate_program, evaluation_json, format_evaluation, program_files
    from kvopt.bench.executors import interrupts_raise, make_executor
    from kvopt.bench.progress import progress_wanted
    from kvopt.bench.results import RunInterrupted, dumps
    from kvopt.bench.runner import RunSettings

    if args.jobs is not None and args.jobs < 1:
        raise KvoptError(f"--jobs: must be >= 1, got {args.jobs}")
    settings = RunSettings(limits_from(args), exact_time_limit_s=args.time_limit)
    programs = program_files(args.program)
    if len(programs) > 1 or Path(args.program[0]).is_dir():
        return evaluate_generation(args, programs, settings)
    try:
        with interrupts_raise():
            document = evaluate_program(programs[0], args.suite or ["adrs50"], settings,
                                        isolation=isolation_from(args),
                                        executor=make_executor(args.executor, args.jobs, args.address),
                                        progress=progress_wanted(args.json), solve_missing=args.solve_missing)
    except RunInterrupted as stop:
        return report_interruption(stop)
    print(dumps(evaluation_json(document)) if args.json else format_evaluation(document))
    failed = integrity_exit(document)
    if failed is not None:
        return failed
    return EXIT_OK if all_valid(document) else EXIT_FAILED


def evaluate_generation(args: argparse.Namespace, programs: list[str], settings: Any) -> int:
    """``kvopt evaluate A.py B.py ...``: one run (trusted state loaded once, one pool, the cache), a ranked table.

    Exit 0 when every program loaded and every case of every program is valid, else 1.
    """
    from kvopt.bench import evaluate as bench_evaluate
    from kvopt.bench.executors import interrupts_raise, make_executor
    from kvopt.bench.progress import progress_wanted
    from kvopt.bench.results import RunInterrupted, dumps

    try:
        with interrupts_raise():
            out = bench_evaluate.evaluate_generation(
                programs, args.suite or ["adrs50"], settings, isolation=isolation_from(args),
                use_cache=not args.no_cache, executor=make_executor(args.executor, args.jobs, args.address),
                progress=progress_wanted(args.json), solve_missing=args.solve_missing)
    except RunInterrupted as stop:
        return report_interruption(stop)
    rows = out["programs"]
    print(dumps(out) if args.json else bench_evaluate.format_ranking(rows, out["isolation"], out["wall_seconds"]))
    if out["integrity"] is not None:
        failed = integrity_exit(out)
        if failed is not None:
            return failed
    return EXIT_OK if all(r["loaded"] and r["valid"] == r["cases"] for r in rows) else EXIT_FAILED


def add_evaluator_parser(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "evaluator", "write the evaluator file of an evolution framework (OpenEvolve, ShinkaEvolve)",
                "Write the file an evolution framework loads as its evaluator: two lines that import kvopt's "
                "(kvopt.integrations). Every program it scores runs in the sandbox of `kvopt evaluate`. Settings "
                "given here are written into the file; KVOPT_* environment variables override them at run time.")
    p.add_argument("--framework", choices=["openevolve", "shinka"], required=True,
                   help="openevolve: evaluator_file with evaluate/evaluate_stage1/evaluate_stage2; shinka: the "
                        "evaluate.py that Shinka runs with --program_path and --results_dir")
    p.add_argument("--out", required=True, help="the file to write, e.g. evaluator.py")
    p.add_argument("--suites", help="comma-separated suites of the full evaluation "
                                    "(default: adrs50,tight,dense,llm,hetero,small)")
    p.add_argument("--timeout", type=float, help="wall seconds per program call (default: 10)")
    p.add_argument("--memory-mb", type=int, help="memory per program call in MB (default: 2048)")
    p.add_argument("--score", choices=["gap", "adrs"],
                   help="what combined_score is: gap = kvopt's gap-based score, adrs = the prism evaluator's "
                        "1/mean(peak) + success rate on adrs50 (default: gap)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_evaluator)


def evaluator_source(framework: str, settings: Mapping[str, Any]) -> str:
    """The two lines of an evaluator file (``settings``: ``LoopConfig`` fields to bake in)."""
    if framework == "shinka":
        head = "from kvopt.integrations.shinka import main, run_from_command_line"
        if settings:
            arguments = ", ".join(f"{k}={v!r}" for k, v in settings.items())
            return ("from kvopt.integrations.shinka import configured, run_from_command_line\n"
                    f"main = configured({arguments})\n"
                    "if __name__ == \"__main__\": raise SystemExit(run_from_command_line(main=main))\n")
        return f"{head}\nif __name__ == \"__main__\": raise SystemExit(run_from_command_line())\n"
    if settings:
        arguments = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return ("from kvopt.integrations.openevolve import configured\n"
                f"evaluate, evaluate_stage1, evaluate_stage2 = configured({arguments})\n")
    return "from kvopt.integrations.openevolve import evaluate, evaluate_stage1, evaluate_stage2\n"


def cmd_evaluator(args: argparse.Namespace) -> int:
    from kvopt.integrations.loop import config_from

    settings: dict[str, Any] = {}
    if args.suites is not None:
        settings["suites"] = args.suites
    if args.timeout is not None:
        settings["timeout_s"] = args.timeout
    if args.memory_mb is not None:
        settings["memory_mb"] = args.memory_mb
    if args.score is not None:
        settings["score"] = args.score
    config = config_from({}, **settings)  # bad settings fail here, not in the user's evolution run
    from kvopt.bench.cases import load_all

    load_all(config.suites)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise KvoptError(f"--out: {out} exists (use --force to overwrite)")
    out.write_text(evaluator_source(args.framework, settings))
    how = (f"openevolve-run initial_program.py {out} --config config.yaml" if args.framework == "openevolve"
           else f"eval_program_path: {out} (in the job config)")
    print(f"wrote {out}; use it as {how}")
    return EXIT_OK


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="gap report of methods and programs over suites",
                       description="Run methods and programs on suites and write report.md, report.html "
                                   "(plots embedded), results.json and results.csv into --out.")
    p.add_argument("--methods", default="greedy,pipeline",
                   help="comma-separated kvopt heuristics and/or exact (default: greedy,pipeline)")
    p.add_argument("--programs", default="", help="comma-separated program files or pkg.module:function")
    p.add_argument("--suite", action="append", help="suite name or folder (repeatable; default: adrs50)")
    p.add_argument("--out", required=True, help="output folder, e.g. reports/adrs50")
    add_containment_options(p)
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per exact solve (default: 60)")
    p.add_argument("--jobs", type=int, help="cases run in parallel (default: min(2, CPUs))")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local processes, or Ray tasks (needs `pip install kvopt[ray]`; default: local)")
    p.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    p.add_argument("--resume", action="store_true",
                   help="skip the cases already in --out/results.jsonl (an interrupted run) and merge them")
    p.add_argument("--json", action="store_true", help="print the per-method summary as JSON")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from kvopt.bench.evaluate import judge
    from kvopt.bench.executors import interrupts_raise, make_executor
    from kvopt.bench.journal import JournaledExecutor, journal_path
    from kvopt.bench.progress import progress_wanted
    from kvopt.bench.report import summary_table, write_report
    from kvopt.bench.results import RunInterrupted, dumps
    from kvopt.bench.runner import RunSettings
    from kvopt.tables import format_table

    output_folder(args.out)
    if args.jobs is not None and args.jobs < 1:
        raise KvoptError(f"--jobs: must be >= 1, got {args.jobs}")
    settings = RunSettings(limits_from(args), exact_time_limit_s=args.time_limit)
    method_names = [m.strip() for m in args.methods.split(",") if m.strip()]
    program_names = [p.strip() for p in args.programs.split(",") if p.strip()]
    suites = args.suite or ["adrs50"]
    command = " ".join(["kvopt report", *[f"--suite {s}" for s in suites], f"--methods {','.join(method_names)}",
                        *([f"--programs {','.join(program_names)}"] if program_names else []), f"--out {args.out}"])
    # Every finished case goes to <out>/results.jsonl at once, so an interrupted run can --resume.
    executor = JournaledExecutor.open(make_executor(args.executor, args.jobs, args.address),
                                      journal_path(args.out), resume=args.resume)
    try:
        with interrupts_raise():
            document = judge(suites, method_names, program_names, settings, isolation=isolation_from(args),
                             executor=executor, progress=progress_wanted(args.json), command=command)
    except RunInterrupted as stop:
        return report_interruption(stop)
    paths = write_report(document, args.out)
    if args.json:
        print(dumps({"summary": document["summary"], "by_suite": document["by_suite"],
                     "wall_seconds": document["wall_seconds"], "files": [str(p) for p in paths]}))
    else:
        print(format_table(*summary_table(document), align="lrrrrrrrrrr"))
        print(f"\nwrote {args.out}/report.md, report.html, results.json, results.csv, results.jsonl "
              f"({document['wall_seconds']:.1f} s)")
    failed = integrity_exit(document)
    return EXIT_OK if failed is None else failed


def add_regress_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regress", help="re-run a baseline and fail if any gap got worse",
                       description="Re-run the methods of a results.json on its cases; exit 1 when a gap got "
                                   "worse beyond --tolerance, a valid case became invalid, or the number of "
                                   "optimal cases dropped. Prints the cases that changed.")
    p.add_argument("--baseline", required=True, metavar="FILE", help="results.json written by kvopt report")
    p.add_argument("--tolerance", type=float, default=1e-9, help="allowed gap increase")
    p.add_argument("--out", metavar="DIR", help="also write the new run's report into this folder")
    p.add_argument("--jobs", type=int, help="cases run in parallel (default: min(2, CPUs))")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_regress)


def cmd_regress(args: argparse.Namespace) -> int:
    from kvopt.bench.executors import LocalExecutor, default_jobs
    from kvopt.bench.progress import progress_wanted
    from kvopt.bench.regress import compare_results, comparison_json, format_comparison, rerun_baseline
    from kvopt.bench.report import write_report
    from kvopt.bench.results import dumps, read_results

    if args.jobs is not None and args.jobs < 1:
        raise KvoptError(f"--jobs: must be >= 1, got {args.jobs}")
    if args.tolerance < 0:
        raise KvoptError(f"--tolerance: must be >= 0, got {args.tolerance}")
    if args.out:
        output_folder(args.out)
    baseline = read_results(args.baseline)
    current = rerun_baseline(baseline, executor=LocalExecutor(args.jobs or default_jobs()),
                             progress=progress_wanted(args.json), command=f"kvopt regress --baseline {args.baseline}")
    comparison = compare_results(baseline, current, args.tolerance)
    if args.out:
        write_report(current, args.out)
    print(dumps(comparison_json(comparison, current)) if args.json else format_comparison(comparison))
    return EXIT_FAILED if comparison.regressed else EXIT_OK


PARSERS: Sequence[Callable[[argparse._SubParsersAction], None]] = (
    add_solve_parser, add_check_parser, add_replan_parser, add_plan_moves_parser, add_generate_parser, add_suites_parser, add_export_parser,
    add_reference_parser, add_evaluate_parser, add_evaluator_parser, add_report_parser, add_regress_parser,
)


def build_parser() -> argparse.ArgumentParser:
    from kvopt import __version__

    parser = argparse.ArgumentParser(prog="kvopt", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_TopHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kvopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (kvopt COMMAND --help for each)")
    for add in PARSERS:
        add(sub)
    for command in sub.choices.values():
        command.formatter_class = _HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        # Extreme inputs are rejected by validation; a numpy warning must still never reach the user.
        with np.errstate(all="ignore"):
            return int(args.func(args))
    except KvoptError as exc:
        print(f"kvopt: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a file that cannot be read or written (permissions, disk full, ...)
        if isinstance(exc, BrokenPipeError):
            sys.stderr.close()
            return EXIT_OK
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kvopt: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("kvopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
