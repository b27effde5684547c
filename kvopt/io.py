"""Instance and placement files: JSON and CSV in, JSON out.

Instance JSON::

    {"name": str, "gpu_mem_gb": [number, ...],
     "models": [{"name": str, "size_gb": number, "req_rate": number, "slo": number}, ...],
     "meta": {...}}            # optional

Models CSV (header ``name,size_gb,req_rate,slo``) with the GPUs given separately.
Placement JSON: ``{"instance", "method", "peak_kvpr", "gpu_kvpr", "assignment",
"seconds", ...}`` (see ``result_to_json``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.evaluate import check_assignment, evaluate, format_fraction
from kvopt.model import DEFAULT_GPU_MEM_GB, Instance, KvoptError, Placement, Result


def _read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.exists():
        raise KvoptError(f"{p}: file not found")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise KvoptError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise KvoptError(f"{p}: not a text file") from None


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
    return Instance.build(data["models"], caps, name=name, meta=meta)


def instance_to_dict(instance: Instance) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": instance.name,
        "gpu_mem_gb": list(instance.gpu_mem_gb),
        "models": [
            {"name": m.name, "size_gb": m.size_gb, "req_rate": m.req_rate, "slo": m.slo}
            for m in instance.models
        ],
    }
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


def load_models_csv(path: str | Path, *, gpus: int | None = None, mem_gb: float = DEFAULT_GPU_MEM_GB,
                    gpu_mem_gb: Sequence[float] | None = None) -> Instance:
    """Read models from CSV (``name,size_gb,req_rate,slo``); GPUs from ``gpus``×``mem_gb``."""
    p = Path(path)
    if not p.exists():
        raise KvoptError(f"{p}: file not found")
    if gpu_mem_gb is None:
        if gpus is None:
            raise KvoptError(f"{p}: a CSV of models needs the cluster: give --gpus N (and --mem-gb)")
        gpu_mem_gb = [mem_gb] * gpus
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [k for k in ("name", "size_gb", "req_rate", "slo") if k not in header]
        if missing:
            raise KvoptError(f"{p}: CSV header is missing column(s) {', '.join(missing)}")
        models = []
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "") for k, v in row.items() if k is not None}
            name = row["name"].strip()
            if not name:
                raise KvoptError(f"{p}: line {line_no}: field 'name' is empty")
            label = f"model {name!r} (line {line_no})" if name else f"line {line_no}"
            models.append({
                "name": name,
                "size_gb": _parse_csv_number(row["size_gb"], f"{label}: field 'size_gb'"),
                "req_rate": _parse_csv_number(row["req_rate"], f"{label}: field 'req_rate'"),
                "slo": _parse_csv_number(row["slo"], f"{label}: field 'slo'"),
            })
    return Instance.build(models, list(gpu_mem_gb), name=p.stem)


def load_instance(path: str | Path, *, gpus: int | None = None, mem_gb: float = DEFAULT_GPU_MEM_GB) -> Instance:
    """Load an instance from ``.json`` (instance file) or ``.csv`` (models; needs ``gpus``)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return load_models_csv(p, gpus=gpus, mem_gb=mem_gb)
    data = _read_json(p)
    inst = instance_from_dict(data, default_name=p.stem)
    if gpus is not None:
        raise KvoptError(f"{p}: --gpus applies to CSV input only; a JSON instance lists its GPUs in 'gpu_mem_gb'")
    return inst


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
    else:
        out["peak_kvpr"] = None
        out["gpu_kvpr"] = None
        out["assignment"] = None
    out["lower_bound"] = _json_float(result.lower_bound)
    if result.lower_bound_exact is not None:
        out["lower_bound_exact"] = format_fraction(result.lower_bound_exact)
    out["gap"] = _json_float(result.gap)
    out["seconds"] = round(result.seconds, 6)
    for key, value in result.details.items():
        out.setdefault(key, value)
    return out


def load_placement(instance: Instance, path: str | Path) -> Placement:
    """Read a placement JSON and check it against the instance."""
    data = _read_json(path)
    if not isinstance(data, Mapping) or "assignment" not in data:
        raise KvoptError(f"{path}: missing field 'assignment' ({{model_name: gpu_index}})")
    return check_assignment(instance, data["assignment"])
