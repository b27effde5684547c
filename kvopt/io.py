"""Instance and placement files: JSON and CSV in, JSON out.

Instance JSON::

    {"name": str, "gpu_mem_gb": [number, ...],
     "models": [{"name": str, "size_gb": number, "req_rate": number, "slo": number}, ...],
     "meta": {...}}            # optional

Models may carry ``"current_gpu"`` (re-placement; absent = new model) and the
instance ``"scenarios": [{"name", "req_rate": {model: rate}}]`` (demand snapshots).

Models CSV (header ``name,size_gb,req_rate,slo``, optional ``current_gpu``, empty =
new) with the GPUs given separately.
Placement JSON: ``{"instance", "method", "peak_kvpr", "gpu_kvpr", "assignment",
"seconds", ...}`` (see ``result_to_json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from importlib.abc import Traversable
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.evaluate import check_assignment, evaluate, format_fraction, scenario_peaks
from kvopt.model import DEFAULT_GPU_MEM_GB, Instance, KvoptError, Placement, Result


# Limits on any JSON kvopt reads: a hostile or broken file gets a clear error, not a
# RecursionError or a minutes-long int parse.  The largest built-in instance is ~1 MB.
MAX_JSON_BYTES = 256 * 1024 * 1024
MAX_JSON_INT_DIGITS = 100


def _parse_json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise KvoptError(f"an integer with {digits} digits (at most {MAX_JSON_INT_DIGITS} are accepted)")
    return int(text)


def loads_json(text: str, where: str) -> Any:
    """Parse JSON text; every failure is a ``KvoptError`` that starts with ``where``.

    Integers longer than ``MAX_JSON_INT_DIGITS`` digits and nesting deeper than
    Python's recursion limit are rejected (``NaN``/``Infinity`` parse, and the
    model's validation rejects them naming the field).
    """
    try:
        return json.loads(text, parse_int=_parse_json_int)
    except KvoptError as exc:
        raise KvoptError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise KvoptError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise KvoptError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. a float literal Python cannot convert
        raise KvoptError(f"{where}: not valid JSON ({exc})") from None


def read_text_input(source: str | Path | Traversable, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The text of an input file (a path or packaged resource), or of stdin for ``-``.

    A folder, a missing or unreadable file, more than ``max_bytes`` bytes or
    non-UTF-8 bytes is a ``KvoptError`` naming the file; a UTF-8 byte-order mark is skipped.
    """
    if str(source) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        where = "<stdin>"
    else:
        f = Path(source) if isinstance(source, str) else source
        where = str(f)
        if f.is_dir():
            raise KvoptError(f"{where}: is a directory, expected a file")
        try:
            with f.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise KvoptError(f"{where}: file not found") from None
        except OSError as exc:
            raise KvoptError(f"{where}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise KvoptError(f"{where}: larger than {max_bytes // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KvoptError(f"{where}: not a text file (expected UTF-8)") from None


def read_json(source: str | Path | Traversable) -> Any:
    """``loads_json`` of a file or packaged resource (``-`` for stdin)."""
    return loads_json(read_text_input(source), "<stdin>" if str(source) == "-" else str(source))


def instance_from_dict(data: Any, *, default_name: str = "instance") -> Instance:
    """Build an ``Instance`` from the JSON object described in the module docstring."""
    if not isinstance(data, Mapping):
        raise KvoptError(f"instance: expected a JSON object, got {type(data).__name__}")
    if "models" not in data:
        raise KvoptError("instance: missing field 'models'")
    if not isinstance(data["models"], list):
        raise KvoptError("field 'models': expected a list of model objects")
    if "gpu_mem_gb" not in data:
        raise KvoptError("instance: missing field 'gpu_mem_gb' (a list of GPU capacities in GB)")
    caps = data["gpu_mem_gb"]
    if not isinstance(caps, list):
        raise KvoptError(f"field 'gpu_mem_gb': expected a list of numbers, got {caps!r}")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise KvoptError(f"field 'name': must be a string, got {name!r}")
    meta = data.get("meta", {})
    if not isinstance(meta, Mapping):
        raise KvoptError("field 'meta': expected an object")
    scenarios = data.get("scenarios", [])
    if not isinstance(scenarios, list):
        raise KvoptError("field 'scenarios': expected a list of {\"name\", \"req_rate\"} objects")
    return Instance.build(data["models"], caps, name=name, meta=meta, scenarios=scenarios)


def instance_to_dict(instance: Instance) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": instance.name,
        "gpu_mem_gb": list(instance.gpu_mem_gb),
        "models": [
            {"name": m.name, "size_gb": m.size_gb, "req_rate": m.req_rate, "slo": m.slo,
             **({} if m.current_gpu is None else {"current_gpu": m.current_gpu})}
            for m in instance.models
        ],
    }
    if instance.scenarios:
        out["scenarios"] = [{"name": s.name, "req_rate": dict(s.req_rate)} for s in instance.scenarios]
    if instance.meta:
        out["meta"] = dict(instance.meta)
    return out


def _parse_csv_number(text: str, where: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise KvoptError(f"{where}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise KvoptError(f"{where}: must be finite, got {text!r}")
    return value


CSV_COLUMNS = ("name", "size_gb", "req_rate", "slo")
CSV_OPTIONAL = ("current_gpu",)  # re-placement: the GPU a model runs on now (empty = new model)


def load_models_csv(path: str | Path, *, gpus: int | None = None, mem_gb: float = DEFAULT_GPU_MEM_GB,
                    gpu_mem_gb: Sequence[float] | None = None) -> Instance:
    """Read models from CSV (``name,size_gb,req_rate,slo``; ``-`` is stdin); GPUs from ``gpus``×``mem_gb``.

    A UTF-8 byte-order mark (what spreadsheet programs write) is skipped; a column
    or a field beyond the four is an error, so a misspelt header is not ignored.
    """
    where = "<stdin>" if str(path) == "-" else str(path)
    if gpu_mem_gb is None:
        if gpus is None:
            raise KvoptError(f"{where}: a CSV of models needs the cluster: give --gpus N (and --mem-gb)")
        if gpus < 1:
            raise KvoptError(f"--gpus: must be >= 1, got {gpus}")
        gpu_mem_gb = [mem_gb] * gpus
    rows = list(csv.reader(io.StringIO(read_text_input(path), newline="")))
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [k for k in CSV_COLUMNS if k not in header]
    if missing:
        raise KvoptError(f"{where}: CSV header is missing column(s) {', '.join(missing)}")
    extra = [h for h in header if h not in CSV_COLUMNS + CSV_OPTIONAL]
    if extra or len(header) != len(set(header)):
        raise KvoptError(f"{where}: CSV header has unknown or repeated column(s) {', '.join(extra) or header}; "
                         f"expected {','.join(CSV_COLUMNS)} (and optionally {','.join(CSV_OPTIONAL)})")
    models = []
    for line_no, values in enumerate(rows[1:], start=2):
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        if len(values) > len(header):
            raise KvoptError(f"{where}: line {line_no}: {len(values)} fields, the header has {len(header)}")
        row = dict(zip(header, values + [""] * (len(header) - len(values))))
        name = row["name"].strip()
        if not name:
            raise KvoptError(f"{where}: line {line_no}: field 'name' is empty")
        label = f"model {name!r} (line {line_no})"
        models.append({"name": name, **{key: _parse_csv_number(row[key], f"{label}: field {key!r}")
                                        for key in CSV_COLUMNS[1:]}})
        current = row.get("current_gpu", "").strip()
        if current:  # empty = a new model
            models[-1]["current_gpu"] = _parse_csv_number(current, f"{label}: field 'current_gpu'")
    name = "stdin" if where == "<stdin>" else Path(path).stem
    return Instance.build(models, list(gpu_mem_gb), name=name)


def load_instance(path: str | Path, *, gpus: int | None = None, mem_gb: float = DEFAULT_GPU_MEM_GB) -> Instance:
    """Load an instance from ``.json`` (instance file) or ``.csv`` (models; needs ``gpus``).

    ``-`` reads stdin: a models CSV when ``gpus`` is given, else instance JSON.
    """
    if str(path) == "-":
        if gpus is not None:
            return load_models_csv(path, gpus=gpus, mem_gb=mem_gb)
        return instance_from_dict(read_json(path), default_name="stdin")
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return load_models_csv(p, gpus=gpus, mem_gb=mem_gb)
    data = read_json(p)
    if gpus is not None:
        raise KvoptError(f"{p}: --gpus applies to CSV input only; a JSON instance lists its GPUs in 'gpu_mem_gb'")
    return instance_from_dict(data, default_name=p.stem)


def save_instance(instance: Instance, path: str | Path) -> None:
    Path(path).write_text(json.dumps(instance_to_dict(instance), indent=1) + "\n")


def _json_float(x: float | None) -> float | str | None:
    if x is None:
        return None
    return x if math.isfinite(x) else "inf"


def result_to_json(instance: Instance, result: Result) -> dict[str, Any]:
    """The placement JSON: re-evaluated here from the placement, never from solver numbers."""
    out: dict[str, Any] = {"instance": result.instance, "method": result.method, "status": result.status}
    if result.placement is not None:
        ev = evaluate(instance, result.placement)
        out["peak_kvpr"] = _json_float(ev.peak_kvpr)
        out["peak_kvpr_exact"] = format_fraction(ev.peak_kvpr_exact)
        out["gpu_kvpr"] = [_json_float(v) for v in ev.gpu_kvpr]
        out["assignment"] = result.placement.as_mapping(instance)
        peaks = scenario_peaks(instance, result.placement)
        if peaks is not None:  # the objective is the worst scenario peak; gpu_kvpr stays at the base rates
            worst = peaks.worst_exact
            out["peak_kvpr"] = _json_float(float(worst))
            out["peak_kvpr_exact"] = format_fraction(worst)
            out.update(peaks.as_json())
    else:
        out["peak_kvpr"] = None
        out["gpu_kvpr"] = None
        out["assignment"] = None
    out["lower_bound"] = _json_float(result.lower_bound)
    if result.lower_bound_exact is not None:
        out["lower_bound_exact"] = format_fraction(result.lower_bound_exact)
    out["gap"] = _json_float(result.gap)
    if result.gap is not None:
        # The bound is the optimum only when the optimum is proven.
        out["gap_against"] = "optimum" if result.status == "optimal" else "lower bound"
    out["seconds"] = round(result.seconds, 6)
    for key, value in result.details.items():
        out.setdefault(key, value)
    return out


def load_placement(instance: Instance, path: str | Path) -> Placement:
    """Read a placement JSON and check it against the instance."""
    data = read_json(path)
    if not isinstance(data, Mapping) or "assignment" not in data:
        raise KvoptError(f"{path}: missing field 'assignment' ({{model_name: gpu_index}})")
    return check_assignment(instance, data["assignment"])
