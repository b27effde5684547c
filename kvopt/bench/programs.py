"""User placement programs: what they are, how they are called, what they returned.

A *program* is one of

* a Python file defining ``compute_model_placement(gpu_num, models)`` — the
  interface of the public ADRS/OpenEvolve/ShinkaEvolve "prism" example:
  ``models`` is a list of ``Model`` objects (``model_name``, ``model_size``,
  ``req_rate``, ``slo``, ``cur_gpu_id``) and the function returns a dict from GPU
  id (``0..gpu_num-1``) to the list of models on that GPU;
* an import path ``pkg.module:function``: a function with the same interface, or
  a kvopt-style heuristic taking one ``Instance`` and returning a ``Placement``
  (or a ``Result``, or a list of GPU indices in model order) — told apart by its
  signature: exactly one required positional parameter means kvopt style;
* the name of a built-in kvopt heuristic (``greedy``, ``pipeline``, ...).

Files and import paths are untrusted: every call runs in a separate process
(``kvopt.bench.sandbox``).  The parent keeps the instance; the child reports
which of the *given* model objects (by identity) the program put on which GPU
key, and the values of the scored attributes after the call.  Validation and
KVPR are then computed here, in the parent, by ``kvopt.evaluate``.

GPU memory: for a homogeneous instance the module-level ``GPU_MEM_SIZE`` of a
program file is set to the GPU capacity before the call (prism programs read it).
Heterogeneous instances are given only to functions that accept a ``gpu_mem``
keyword (the list of capacities, GB, by GPU id); other prism-style programs are
not run on them (those cases are listed as skipped).
"""

from __future__ import annotations

import ast
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.bench.child import ENTRY_POINT, Model, json_scalar
from kvopt.bench.sandbox import ChildRun, Limits, run_child
from kvopt.model import Instance, KvoptError

# The prism example's model class, for programs and tests that build models themselves.
ProgramModel = Model

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
KVOPT_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class ProgramSpec:
    """A program to evaluate.

    ``kind``: ``file`` (``target`` is an absolute path), ``import``
    (``target`` is ``pkg.module:function``) or ``heuristic`` (a kvopt heuristic
    name).  ``label`` is how the user named it (the method name in reports).
    """

    kind: str
    target: str
    label: str


@dataclass(frozen=True)
class ProgramInfo:
    """What probing the program found: ``style`` is ``prism``, ``instance`` or ``heuristic``."""

    style: str
    accepts_gpu_mem: bool


@dataclass(frozen=True)
class ProgramOutcome:
    """One call of a program on one instance, before validation.

    ``gpu_lists`` maps each GPU key the program used (as it used it) to the
    *names* of the given models it listed there; ``None`` with ``failure`` set
    when the call failed.  ``seconds`` is the time of the call itself.
    """

    gpu_lists: dict[Any, list[str]] | None
    failure: str | None
    reason: str | None
    seconds: float
    stdout_tail: str = ""
    stderr_tail: str = ""


class OpaqueGpuId:
    """A GPU key that is not a JSON scalar (e.g. a tuple); shown as the program's ``repr``."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpaqueGpuId) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("OpaqueGpuId", self.text))


def heuristic_names() -> list[str]:
    """Names of the built-in kvopt heuristics (empty while ``kvopt.heuristics`` is missing)."""
    try:
        from kvopt.heuristics import HEURISTICS
    except ImportError:
        return []
    return sorted(HEURISTICS)


def resolve_program(text: str) -> ProgramSpec:
    """Turn the user's PROGRAM argument into a ``ProgramSpec``.

    Raises ``KvoptError`` (bad input) for a missing file, a file that is not valid
    Python, a file with no top-level ``compute_model_placement``, or text that is
    none of file / heuristic name / import path.
    """
    if text in heuristic_names():
        return ProgramSpec("heuristic", text, text)
    path = Path(text)
    if text.endswith(".py") or path.exists():
        return ProgramSpec("file", str(check_program_file(path)), text)
    if IMPORT_PATH.match(text):
        return ProgramSpec("import", text, text)
    known = ", ".join(heuristic_names()) or "greedy, pipeline"
    raise KvoptError(f"program {text!r}: not a Python file, a kvopt heuristic ({known}) "
                     f"or an import path pkg.module:function")


def check_program_file(path: Path) -> Path:
    """The resolved path of a readable Python file that defines the entry point at top level."""
    if not path.is_file():
        raise KvoptError(f"{path}: file not found")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KvoptError(f"{path}: cannot read the program ({exc})") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise KvoptError(f"{path}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    if not defines_name(tree, ENTRY_POINT):
        raise KvoptError(f"{path}: no function {ENTRY_POINT}(gpu_num, models) defined at top level")
    return path.resolve()


def defines_name(tree: ast.Module, name: str) -> bool:
    """Whether a module binds ``name`` at top level (def, assignment or import), also inside if/try."""
    for node in _top_level_statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
    return False


def _top_level_statements(body: Sequence[ast.stmt]):
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level_statements(node.body)
            yield from _top_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _top_level_statements(block)


def program_sys_path(spec: ProgramSpec) -> list[str]:
    """What the child puts in front of ``sys.path``.

    A file sees its own folder (as ``python program.py`` would); an import path
    sees the current directory and ``$PYTHONPATH``, as in the user's shell.  Both
    see the kvopt source tree (for kvopt-style functions).
    """
    if spec.kind == "file":
        return [str(Path(spec.target).parent), KVOPT_ROOT]
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [os.getcwd(), *extra, KVOPT_ROOT]


def probe_program(spec: ProgramSpec, limits: Limits) -> ProgramInfo:
    """Load the program once in the sandbox and read its entry point's signature.

    Raises ``KvoptError`` when it cannot be loaded or has no entry point (bad input).
    """
    if spec.kind == "heuristic":
        return ProgramInfo("heuristic", True)
    job = {"mode": "probe", "kind": spec.kind, "target": spec.target, "sys_path": program_sys_path(spec)}
    run = run_child(job, limits)
    outcome = interpret_failure(run, limits)
    if outcome is not None:
        raise KvoptError(f"{spec.label}: cannot load the program: {outcome[1]}")
    answer = run.answer or {}
    return ProgramInfo(str(answer.get("style", "prism")), bool(answer.get("accepts_gpu_mem", False)))


def unsupported_reason(info: ProgramInfo, instance: Instance) -> str | None:
    """Why the program cannot be given this instance, or ``None``."""
    if info.style == "prism" and not instance.is_homogeneous and not info.accepts_gpu_mem:
        return "heterogeneous GPUs: the program does not accept a gpu_mem keyword"
    return None


def program_job(spec: ProgramSpec, instance: Instance) -> dict[str, Any]:
    """The child's job for one call: plain data built from the parent's copy of the instance."""
    from kvopt.io import instance_to_dict

    return {
        "mode": "run", "kind": spec.kind, "target": spec.target, "sys_path": program_sys_path(spec),
        "gpu_num": instance.num_gpus,
        "gpu_mem": list(instance.gpu_mem_gb),
        "models": [{"model_name": m.name, "model_size": m.size_gb, "req_rate": m.req_rate, "slo": m.slo,
                    "cur_gpu_id": m.current_gpu} for m in instance.models],
        "instance": instance_to_dict(instance),
    }


def run_program(spec: ProgramSpec, instance: Instance, limits: Limits) -> ProgramOutcome:
    """Call a file or import-path program once on ``instance`` in the sandbox."""
    run = run_child(program_job(spec, instance), limits)
    failure = interpret_failure(run, limits)
    tails = {"stdout_tail": run.stdout_tail, "stderr_tail": run.stderr_tail}
    if failure is not None:
        seconds = float((run.answer or {}).get("seconds", run.wall_seconds))
        return ProgramOutcome(None, failure[0], failure[1], seconds, **tails)
    answer = run.answer or {}
    seconds = float(answer.get("seconds", run.wall_seconds))
    mutation = mutated_fields(instance, answer.get("after"))
    if mutation is not None:
        return ProgramOutcome(None, "mutated_input", mutation, seconds, **tails)
    try:
        gpu_lists = decode_gpu_lists(answer.get("gpu_lists"), instance)
    except (TypeError, ValueError, IndexError):
        return ProgramOutcome(None, "bad_output", "the answer channel held a malformed placement", seconds, **tails)
    return ProgramOutcome(gpu_lists, None, None, seconds, **tails)


def interpret_failure(run: ChildRun, limits: Limits) -> tuple[str, str] | None:
    """``(failure code, reason)`` for a child that did not return an answer with ``ok``; else ``None``."""
    if run.timed_out:
        return "timeout", f"timed out after {limits.timeout_s:g} s (process killed)"
    if run.answer is not None:
        if run.answer.get("ok"):
            return None
        return str(run.answer.get("failure", "error")), str(run.answer.get("reason", "unknown failure"))
    if run.channel_error is not None:
        return "bad_output", f"{run.channel_error} (exit code {run.returncode})"
    if "MemoryError" in run.stderr_tail:
        return "memory", f"ran out of memory (limit {limits.memory_mb} MB) and exited"
    code = run.returncode
    if code is not None and code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGXFSZ:
            return "killed", f"killed by {name}: wrote more than {limits.output_mb} MB of output"
        if -code == signal.SIGKILL:
            return "killed", f"killed by {name} (out of memory?)"
        return "killed", f"crashed: killed by {name}"
    last = _last_line(run.stderr_tail)
    detail = f"; stderr: {last}" if last else ""
    return "exit", f"exited the interpreter (exit code {code}) without returning a placement{detail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def expected_watched_values(instance: Instance) -> list[list[Any]]:
    """The scored attributes as the child encodes them, from the parent's copy."""
    return [[json_scalar(v) for v in (m.name, m.size_gb, m.req_rate, m.slo)] for m in instance.models]


def mutated_fields(instance: Instance, after: Sequence[Sequence[Any]] | None) -> str | None:
    """A reason naming the first scored attribute the program changed on a given model, or ``None``."""
    if after is None:  # kvopt-style functions get an immutable Instance
        return None
    expected = expected_watched_values(instance)
    fields = ("model_name", "model_size", "req_rate", "slo")
    for model, want, got in zip(instance.models, expected, after):
        for field, w, g in zip(fields, want, got):
            if w != g:
                shown = g["repr"] if isinstance(g, dict) else repr(g)
                return f"mutated the given models: {model.name!r}.{field} changed from {w!r} to {shown}"
    return None


def decode_gpu_key(key: Any) -> Any:
    if isinstance(key, Mapping):
        return OpaqueGpuId(str(key.get("repr", "?")))
    return key


def decode_gpu_lists(raw: Any, instance: Instance) -> dict[Any, list[str]]:
    """``{gpu key: [model name, ...]}`` from the child's ``[[key, [model index]], ...]``."""
    names = [m.name for m in instance.models]
    out: dict[Any, list[str]] = {}
    for key, indices in raw:
        out.setdefault(decode_gpu_key(key), []).extend(names[int(i)] for i in indices)
    return out
