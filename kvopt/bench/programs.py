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
import random
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kvopt.bench.child import ENTRY_POINT, Model, json_scalar
from kvopt.bench.isolation import package_folders
from kvopt.bench.sandbox import ChildRun, Limits, run_child
from kvopt.model import Instance, KvoptError

# The prism example's model class, for programs and tests that build models themselves.
ProgramModel = Model

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
KVOPT_ROOT = str(Path(__file__).resolve().parents[2])
# What is kept of a reason and of a failed call's stdout/stderr: enough to understand, too little to flood.
REASON_CHARS = 300
OUTPUT_TAIL_CHARS = 800


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
    cpu_seconds: float | None = None


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

    Raises ``KvoptError`` when it cannot be loaded or has no entry point (bad
    input); the reason is the program's text, cleaned (``clean_text``).
    """
    if spec.kind == "heuristic":
        return ProgramInfo("heuristic", True)
    # The probe is a run like any other, on a decoy instance: the program cannot tell it apart
    # (so it cannot do untimed work there); the parent stops it once the interface is known.
    run = run_child(program_job(spec, decoy_instance()), limits, interface_only=True)
    interface = run.interface or {}
    style, accepts_gpu_mem = interface.get("style"), interface.get("accepts_gpu_mem")
    if style is None:
        outcome = interpret_failure(run, limits) or ("bad_output", "no interface line on the answer channel")
        raise KvoptError(f"{spec.label}: cannot load the program: {clean_text(outcome[1])}")
    if style not in ("prism", "instance") or not isinstance(accepts_gpu_mem, bool):
        raise KvoptError(f"{spec.label}: cannot load the program: the answer channel held an unexpected probe answer")
    return ProgramInfo(style, accepts_gpu_mem)


def decoy_instance() -> Instance:
    """A fresh random instance shaped like an adrs50 case (5-9 GPUs of 80 GB, ``model_j`` names)."""
    rng = random.SystemRandom()
    gpus = rng.randint(5, 9)
    models = [{"name": f"model_{j}", "size_gb": rng.randint(10, 29), "req_rate": rng.randint(1, 9),
               "slo": rng.randint(5, 9)} for j in range(2 * gpus)]
    return Instance.build(models, [80] * gpus, name=f"case_{rng.randint(0, 99):02d}")


def unsupported_reason(info: ProgramInfo, instance: Instance) -> str | None:
    """Why the program cannot be given this instance, or ``None``."""
    if info.style == "prism" and not instance.is_homogeneous and not info.accepts_gpu_mem:
        return "heterogeneous GPUs: the program does not accept a gpu_mem keyword"
    return None


def program_job(spec: ProgramSpec, instance: Instance) -> dict[str, Any]:
    """The child's job for one call: plain data built from the parent's copy of the instance."""
    from kvopt.io import instance_to_dict

    return {
        "kind": spec.kind, "target": spec.target, "sys_path": program_sys_path(spec),
        "package_paths": list(package_folders()),
        "gpu_num": instance.num_gpus,
        "gpu_mem": list(instance.gpu_mem_gb),
        "models": [{"model_name": m.name, "model_size": m.size_gb, "req_rate": m.req_rate, "slo": m.slo,
                    "cur_gpu_id": m.current_gpu} for m in instance.models],
        "instance": instance_to_dict(instance),
    }


def run_program(spec: ProgramSpec, instance: Instance, limits: Limits) -> ProgramOutcome:
    """Call a file or import-path program once on ``instance`` in the sandbox.

    ``seconds`` is the parent's measure (``ChildRun.seconds``); every text that
    came from the program is cleaned before it is kept.
    """
    run = run_child(program_job(spec, instance), limits)
    failure = interpret_failure(run, limits)
    tails = {"stdout_tail": clean_text(run.stdout_tail, OUTPUT_TAIL_CHARS, keep_newlines=True),
             "stderr_tail": clean_text(run.stderr_tail, OUTPUT_TAIL_CHARS, keep_newlines=True),
             "cpu_seconds": run.cpu_seconds}
    if failure is not None:
        return ProgramOutcome(None, failure[0], clean_text(failure[1]), run.seconds, **tails)
    answer = run.answer or {}
    try:
        mutation = mutated_fields(instance, answer.get("after"))
        gpu_lists = decode_gpu_lists(answer.get("gpu_lists"), instance)
    except MalformedAnswer as exc:
        return ProgramOutcome(None, "bad_output", f"the answer channel held a malformed placement ({exc})",
                              run.seconds, **tails)
    if mutation is not None:
        return ProgramOutcome(None, "mutated_input", clean_text(mutation), run.seconds, **tails)
    return ProgramOutcome(gpu_lists, None, None, run.seconds, **tails)


# Failure codes the child may report, all about the program itself.  The ones that blame
# containment ("sandbox", "timeout", "memory", "killed") come only from what the parent
# observed: on the channel, which the program can write, they are forged (bad_output).
CHILD_FAILURES = frozenset({"bad_program", "no_function", "exit", "exception", "not_dict", "bad_output",
                            "foreign_object", "no_placement"})


def interpret_failure(run: ChildRun, limits: Limits) -> tuple[str, str] | None:
    """``(failure code, reason)`` for a child that did not return an answer with ``ok``; else ``None``."""
    if run.sandbox_failure is not None:
        return "sandbox", run.sandbox_failure
    if run.timed_out:
        return "timeout", f"timed out after {limits.timeout_s:g} s (every process of the call killed)"
    if run.memory_exceeded:
        return "memory", (f"ran out of memory: exceeded the limit of {limits.memory_mb} MB "
                          "(all its processes together)")
    if run.answer is not None:
        if run.answer.get("ok") is True:
            return None
        code, reason = run.answer.get("failure"), run.answer.get("reason")
        if code not in CHILD_FAILURES or not isinstance(reason, str):
            return "bad_output", "the answer channel held a malformed failure report"
        return code, reason
    if run.channel_error is not None:
        return "bad_output", f"{run.channel_error} (exit code {run.returncode})"
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


class MalformedAnswer(ValueError):
    """The child's answer does not have the shape kvopt's child writes (the program wrote it)."""


def expected_watched_values(instance: Instance) -> list[list[Any]]:
    """The scored attributes as the child encodes them, from the parent's copy."""
    return [[json_scalar(v) for v in (m.name, m.size_gb, m.req_rate, m.slo)] for m in instance.models]


def mutated_fields(instance: Instance, after: Any) -> str | None:
    """A reason naming the first scored attribute the program changed on a given model, or ``None``."""
    if after is None:  # kvopt-style functions get an immutable Instance
        return None
    expected = expected_watched_values(instance)
    if not isinstance(after, list) or len(after) != len(expected) or \
            any(not isinstance(row, list) or len(row) != 4 for row in after):
        raise MalformedAnswer("the models' values after the call")
    fields = ("model_name", "model_size", "req_rate", "slo")
    for model, want, got in zip(instance.models, expected, after):
        for name, w, g in zip(fields, want, got):
            if w != g:
                shown = g.get("repr") if isinstance(g, dict) else repr(g)
                return f"mutated the given models: {model.name!r}.{name} changed from {w!r} to {shown}"
    return None


def decode_gpu_key(key: Any) -> Any:
    """A GPU key as the program used it: a JSON scalar, or ``{"repr": text}`` for anything else."""
    if isinstance(key, dict):
        text = key.get("repr")
        if len(key) != 1 or not isinstance(text, str):
            raise MalformedAnswer("a GPU key")
        return OpaqueGpuId(clean_text(text, 200))
    if isinstance(key, str):
        return clean_text(key, 200)
    if key is None or isinstance(key, (int, float)) and not isinstance(key, bool):
        return key
    raise MalformedAnswer("a GPU key")


def decode_gpu_lists(raw: Any, instance: Instance) -> dict[Any, list[str]]:
    """``{gpu key: [model name, ...]}`` from the child's ``[[key, [model index]], ...]``, checked strictly."""
    names = [m.name for m in instance.models]
    if not isinstance(raw, list):
        raise MalformedAnswer("the GPU lists")
    out: dict[Any, list[str]] = {}
    for item in raw:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], list):
            raise MalformedAnswer("a GPU list")
        key, indices = decode_gpu_key(item[0]), item[1]
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(names):
                raise MalformedAnswer("a model index")
        out.setdefault(key, []).extend(names[i] for i in indices)
    return out


# C0/C1 controls (ANSI escapes, carriage returns, backspaces) and the invisible format characters
# that reorder or hide text (bidi overrides, zero-width marks).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                     "\ufeff\ufff9-\ufffb]")


def clean_text(text: str, limit: int = REASON_CHARS, *, keep_newlines: bool = False) -> str:
    """Program-supplied text made safe to print: control and format characters (ANSI escapes,
    bidi overrides, carriage returns) removed, newlines folded unless kept, at most ``limit`` characters."""
    text = str(text)
    if not keep_newlines:
        text = text.replace("\n", " ").replace("\t", " ")
    cleaned = _UNSAFE.sub("", text)
    if len(cleaned) > limit:
        # Tails keep their end (the last traceback lines), reasons their start.
        cleaned = "…" + cleaned[-(limit - 1):] if keep_newlines else cleaned[:limit - 1] + "…"
    return cleaned
