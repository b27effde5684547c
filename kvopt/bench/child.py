"""The child side of a sandboxed program run (standard library only).

Run as ``python -s -P child.py RESULT_FD READY_FD LAYERS WORK_DIR`` with a JSON
job on stdin (``kvopt.bench.sandbox`` does it, inside the sandbox).  It reads the
job, points descriptor 0 at ``/dev/null``, and confines itself as ``LAYERS``
(comma-separated: ``landlock`` — writes only beneath ``WORK_DIR``; ``caps`` —
every capability dropped; ``seccomp`` — an own session keyring and a seccomp
filter, see ``syscalls.py``).  Then it writes ``R`` to ``READY_FD`` and closes it (the
parent's clock for the program starts there) — or, when confinement failed,
``S`` and the reason, and exits without running the program.  It loads the
program, writes the function's interface as the first line of ``RESULT_FD``,
calls it once, and writes one JSON object after it.  ``RESULT_FD`` is a channel
the program's own ``print``s never reach (its stdout/stderr go to files the
parent reads separately); the program could still write to it itself, so the
parent treats the channel as untrusted input (size cap, nesting limit, strict
checks, failure codes the program may claim).

This file imports nothing from kvopt at module level so that it starts fast and
works in isolated mode; ``Model`` here is the model class given to programs
(the public ADRS/OpenEvolve "prism" interface) and is re-exported by
``kvopt.bench.programs``.

Job (stdin) — the same shape for the probe (on a decoy instance) and every run::

    {"kind": "file" | "import", "target": str, "sys_path": [str, ...],
     "gpu_num": int, "gpu_mem": [number, ...],
     "models": [{"model_name", "model_size", "req_rate", "slo", "cur_gpu_id"}, ...],
     "instance": {...}}                                 # for instance-style functions

Result (RESULT_FD): a first line, then one object::

    {"style": "prism" | "instance", "accepts_gpu_mem": bool, "params": [...]}
    {"ok": true, "gpu_lists": [[key, [model index, ...]], ...], "after": [[name, size, rate, slo], ...]}
    or {"ok": false, "failure": code, "reason": str}

GPU keys are sent as JSON values when they are ``int``/``float``/``str``/``None``
(so the parent can reject a non-integer id with the value the program used) and
as ``{"repr": ...}`` otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
import types

ENTRY_POINT = "compute_model_placement"
# The scored attributes; a program that changes one of these on a given model fails.
WATCHED_ATTRIBUTES = ("model_name", "model_size", "req_rate", "slo")
# Freed on MemoryError so that the error can still be reported.
_BALLAST_BYTES = 4 << 20
_MAX_REPR = 200


class Model:
    """A model as the ADRS/OpenEvolve "prism" programs see it.

    ``model_size`` is the weight size in GB, ``req_rate`` requests/s, ``slo`` the
    latency SLO; ``cur_gpu_id`` is free for the program to use.
    """

    def __init__(self, model_name, model_size, req_rate, slo, cur_gpu_id=None):
        self.model_name = model_name
        self.model_size = model_size
        self.req_rate = req_rate
        self.slo = slo
        self.cur_gpu_id = cur_gpu_id

    def __repr__(self):
        return (f"Model(model_name={self.model_name!r}, model_size={self.model_size!r}, "
                f"req_rate={self.req_rate!r}, slo={self.slo!r}, cur_gpu_id={self.cur_gpu_id!r})")


class ProgramFailure(Exception):
    """A classified failure of the user's program: ``code`` and a human reason."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def short_repr(value) -> str:
    try:
        text = repr(value)
    except BaseException:  # a hostile __repr__ must not break reporting
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "..."


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line)`` using the innermost frame of the traceback."""
    import traceback  # only on failure: a clean call does not pay for importing it

    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {os.path.basename(last.filename)}:{last.lineno})"
    message = str(exc)
    if len(message) > 500:
        message = message[:500] + "..."
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def classify_base_exception(exc: BaseException, during: str) -> ProgramFailure:
    """Map an exception escaping the program to a failure code and reason."""
    if isinstance(exc, SystemExit):
        return ProgramFailure("exit", f"called sys.exit({exc.code!r}) {during}")
    # A MemoryError may be raised by the program itself: only the parent's own observation of
    # the call's memory limit is reported as "memory".
    return ProgramFailure("exception", f"raised {describe_exception(exc)} {during}")


# -- loading ---------------------------------------------------------------------------
def load_module(kind: str, target: str):
    """Import the program: a file path (as module ``program``) or ``pkg.module:function``."""
    if kind == "file":
        spec = importlib.util.spec_from_file_location("program", target)
        if spec is None or spec.loader is None:
            raise ProgramFailure("bad_program", f"cannot load {target} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules["program"] = module
        spec.loader.exec_module(module)
        return module
    module_name = target.split(":", 1)[0]
    return importlib.import_module(module_name)


def entry_function(kind: str, target: str, module):
    name = target.split(":", 1)[1] if kind == "import" else ENTRY_POINT
    fn = getattr(module, name, None)
    if fn is None:
        where = target.split(":", 1)[0] if kind == "import" else os.path.basename(target)
        raise ProgramFailure("no_function", f"{where} defines no function {name!r}")
    if not callable(fn):
        raise ProgramFailure("no_function", f"{name!r} is not a function (got {type(fn).__name__})")
    return fn


def function_style(kind: str, fn) -> tuple[str, bool, list[str]]:
    """``(style, accepts_gpu_mem, parameter names)``.

    A program file always uses the prism interface ``fn(gpu_num, models)``.  For an
    import path, a function with exactly one required positional parameter (and no
    ``*args``) is a kvopt heuristic taking an ``Instance``; anything else uses the
    prism interface.
    """
    if kind == "file" and type(fn) is types.FunctionType and not fn.__dict__.keys() & {"__wrapped__", "__signature__"}:
        # A file's function is called fn(gpu_num, models): only gpu_mem is looked up, from the code
        # object (importing inspect would cost every call 16 ms).
        code = fn.__code__
        names = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        return "prism", "gpu_mem" in names[code.co_posonlyargcount:], names
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "prism", False, []
    names = [p.name for p in params]
    accepts_gpu_mem = any(p.name == "gpu_mem" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                          for p in params)
    required = [p for p in params
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    if kind == "import" and len(required) == 1 and not has_varargs:
        return "instance", accepts_gpu_mem, names
    return "prism", accepts_gpu_mem, names


# -- output conversion -----------------------------------------------------------------
def encode_gpu_key(key):
    """The GPU id as a JSON value the parent can check (never coerced to int unless integral type)."""
    if isinstance(key, bool):
        return {"repr": repr(key)}
    if key is None or isinstance(key, str):
        return key
    if isinstance(key, int):
        return int(key)
    if isinstance(key, float):
        return key if math.isfinite(key) else {"repr": repr(key)}
    # numpy integers (e.g. from argmin) are integers; anything else is shown as given.
    if type(key).__module__ == "numpy" and hasattr(key, "__index__") and "int" in type(key).__name__:
        return int(key)
    return {"repr": short_repr(key)}


def copy_hint(model, originals: list) -> str:
    """``"; a copy of model 'x' ..."`` when the stray object bears a given model's name (a deep copy of the
    placement is the usual cause in evolved programs), else ``""``."""
    try:
        name = getattr(model, "model_name", None)
        if isinstance(name, str) and any(name == m.model_name for m in originals):
            return (f"; it is a copy of model {name[:60]!r} (copy.deepcopy of a placement?): "
                    "return the model objects you were given")
    except BaseException:  # a hostile attribute must not break reporting
        pass
    return ""


def convert_gpu_lists(placement, originals: list) -> list:
    """``[[gpu key, [model index, ...]], ...]``; identity-checked against ``originals``."""
    if not isinstance(placement, dict):
        raise ProgramFailure("not_dict", f"returned {type(placement).__name__} "
                                          f"({short_repr(placement)}), expected a dict {{gpu_id: [models]}}")
    index_of = {id(m): i for i, m in enumerate(originals)}
    out = []
    for key, models in placement.items():
        if not isinstance(models, (list, tuple)):
            raise ProgramFailure("bad_output", f"GPU {short_repr(key)}: expected a list of models, "
                                               f"got {type(models).__name__} ({short_repr(models)})")
        indices = []
        for pos, model in enumerate(models):
            index = index_of.get(id(model))
            if index is None:
                raise ProgramFailure("foreign_object",
                                     f"GPU {short_repr(key)} item {pos}: returned an object that is not one of "
                                     f"the given models ({short_repr(model)}){copy_hint(model, originals)}")
            indices.append(index)
        out.append([encode_gpu_key(key), indices])
    return out


def json_scalar(value):
    if isinstance(value, bool) or value is None:
        return {"repr": repr(value)}
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return {"repr": short_repr(value)}


def watched_values(originals: list) -> list:
    """The scored attributes of the given models after the call (for the mutation check)."""
    out = []
    for m in originals:
        row = []
        for attr in WATCHED_ATTRIBUTES:
            try:
                row.append(json_scalar(getattr(m, attr)))
            except BaseException:
                row.append({"repr": "<missing>"})
        out.append(row)
    return out


def placement_from_instance_style(result) -> list:
    """A kvopt heuristic's ``Placement``/``Result``/GPU-index list as ``[[gpu key, [model index]], ...]``."""
    placement = getattr(result, "placement", result)
    if placement is None:
        raise ProgramFailure("no_placement", "returned a result without a placement")
    gpu_of = getattr(placement, "gpu_of", placement)
    if not isinstance(gpu_of, (list, tuple)):
        raise ProgramFailure("bad_output", f"returned {type(result).__name__}, expected a Placement, "
                                           "a Result or a list of GPU indices")
    groups: dict[str, list] = {}
    keys: dict[str, object] = {}
    for index, gpu in enumerate(gpu_of):
        key = encode_gpu_key(gpu)
        label = json.dumps(key, sort_keys=True)
        keys.setdefault(label, key)
        groups.setdefault(label, []).append(index)
    return [[keys[label], indices] for label, indices in groups.items()]


# -- the two modes ---------------------------------------------------------------------
PROGRAM_SEED = 0  # scripts/check_verdicts.py's oracle seeds with it too, so both judge the same draws


def seed_random_generators() -> None:
    """Fixed seeds, so an unseeded randomized program gives the same answer on every run."""
    import random

    random.seed(PROGRAM_SEED)
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # only when the program uses it: importing numpy costs ~0.1 s
        numpy.random.seed(PROGRAM_SEED)


def run(job: dict, channel) -> dict:
    """Load the program, send its interface as the first line of ``channel``, then call it.

    Every call, the probe included, does exactly this on the instance it is given
    (the probe's is a decoy): nothing tells the program which call it is in.
    """
    module = call_guarded(lambda: load_module(job["kind"], job["target"]), "while loading the program")
    fn = entry_function(job["kind"], job["target"], module)
    style, accepts_gpu_mem, params = function_style(job["kind"], fn)
    channel.write(json.dumps({"style": style, "accepts_gpu_mem": accepts_gpu_mem, "params": params}).encode()
                  + b"\n")
    channel.flush()
    seed_random_generators()
    if style == "instance":
        return run_instance_style(fn, job)
    gpu_num = job["gpu_num"]
    gpu_mem = job["gpu_mem"]
    if len(set(gpu_mem)) == 1 and job["kind"] == "file":
        # Prism programs read the module-level GPU_MEM_SIZE at call time.
        module.GPU_MEM_SIZE = gpu_mem[0]
    originals = [Model(m["model_name"], m["model_size"], m["req_rate"], m["slo"], m.get("cur_gpu_id"))
                 for m in job["models"]]
    models_arg = list(originals)  # the program may sort or edit its list freely
    kwargs = {"gpu_mem": list(gpu_mem)} if accepts_gpu_mem else {}
    placement = call_guarded(lambda: fn(gpu_num, models_arg, **kwargs), during_call(fn))
    gpu_lists = call_guarded(lambda: convert_gpu_lists(placement, originals), "while its result was read")
    return {"ok": True, "gpu_lists": gpu_lists, "after": watched_values(originals)}


def run_instance_style(fn, job: dict) -> dict:
    from kvopt.io import instance_from_dict

    instance = instance_from_dict(job["instance"])
    result = call_guarded(lambda: fn(instance), during_call(fn))
    gpu_lists = call_guarded(lambda: placement_from_instance_style(result), "while its result was read")
    return {"ok": True, "gpu_lists": gpu_lists, "after": None}


def during_call(fn) -> str:
    try:
        name = fn.__name__
    except BaseException:  # noqa: BLE001 - a hostile object may raise on attribute access
        name = None
    return f"in {name}" if isinstance(name, str) else "in the function"


_ballast: bytearray | None = None


def call_guarded(thunk, during: str):
    """Run user code; any exception (even ``SystemExit``) becomes a ``ProgramFailure``."""
    global _ballast
    try:
        return thunk()
    except ProgramFailure:
        raise
    except MemoryError as exc:
        _ballast = None  # give the reporting code room to run
        failure = classify_base_exception(exc, during)
    except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything
        failure = classify_base_exception(exc, during)
    raise failure


def load_sibling(name: str):
    """A kvopt module next to this file, loaded by path (no kvopt import before the program runs)."""
    spec = importlib.util.spec_from_file_location(f"_kvopt_{name}", os.path.join(os.path.dirname(__file__),
                                                                                 f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def confine(layers: set[str], work_dir: str) -> None:
    """Landlock, then capabilities, keyring and seccomp (``syscalls.py``), as ``layers`` asks."""
    hidden = [f for f in os.environ.pop("KVOPT_HIDDEN_FOLDERS", "").split(os.pathsep) if f]
    if "landlock" in layers:
        load_sibling("landlock").restrict_self(work_dir, hidden, "kvopt-run-")
    if layers - {"landlock"}:
        syscalls = load_sibling("syscalls")
        if "caps" in layers:
            syscalls.drop_capabilities()
        for layer in layers:
            if layer.startswith("seccomp"):
                syscalls.confine_syscalls(layer.partition(":")[2])


def hide_job_descriptor() -> None:
    """Descriptor 0 held the job: point it at ``/dev/null`` so the program has no handle to re-read it."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)


def main(argv: list[str]) -> int:
    global _ballast
    result_fd, ready_fd = int(argv[1]), int(argv[2])
    layers = set(argv[3].split(",")) - {"", "-"}
    job = json.loads(sys.stdin.read())
    hide_job_descriptor()
    # Started with -S: the package folders (pyseccomp, numpy, ...) without running the environment's .pth files.
    sys.path.extend(p for p in job.get("package_paths", []) if p not in sys.path)
    try:
        confine(layers, argv[4])
    except Exception as exc:  # noqa: BLE001 - no containment, no program run
        # Said on the ready pipe, which the program never holds: a "sandbox" failure cannot be forged.
        os.write(ready_fd, ("S" + f"could not confine the call: {type(exc).__name__}: {exc}")[:400].encode())
        os._exit(0)
    os.write(ready_fd, b"R")
    os.close(ready_fd)
    for path in reversed(job.get("sys_path", [])):
        sys.path.insert(0, path)
    _ballast = bytearray(_BALLAST_BYTES)
    channel = os.fdopen(result_fd, "wb", closefd=True)
    try:
        answer = run(job, channel)
    except ProgramFailure as failure:
        answer = {"ok": False, "failure": failure.code, "reason": failure.reason}
    _ballast = None
    channel.write(json.dumps(answer, allow_nan=False).encode())
    channel.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: it would run the program's atexit hooks and finalizers.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
