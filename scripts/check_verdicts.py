"""Check kvopt's valid/invalid verdicts on a folder of evolved programs against an independent oracle.

For every program and every case of the suite (default adrs50, the cases those
programs were evolved on):

* **kvopt**: ``judge`` — the sandbox, the answer decoding and ``check_gpu_lists``
  — gives valid, or invalid with a failure code and reason;
* **oracle**: this script runs the program again in a plain subprocess (its own
  harness, read-only bubblewrap when available) and checks the answer with its
  own few lines: a dict; integer GPU ids in ``range(gpu_num)``; every given model
  object exactly once (by identity); per GPU ``sum(size) <= 80`` in exact
  rationals; the models' fields unchanged; an answer within the per-call limit;
* **prism**: the verdict of the evaluator the programs were written for — a
  program "succeeds" when the call returns a dict without raising; it does not
  check that each model is placed once, that memory fits, or the GPU ids.

kvopt must agree with the oracle on every (program, case).  Where kvopt and
prism disagree, the table gives kvopt's reason, by failure code.  Writes
``--out`` (Markdown; no program text, only counts, codes and file names).

Usage::

    python scripts/check_verdicts.py FOLDER [--suite adrs50] [--manifest M.json] [--out reports/verdicts.md]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

HARNESS = r'''
import importlib.util, json, math, random, signal, sys, time
class TooSlow(BaseException):
    pass
def stop(signum, frame):
    raise TooSlow()
signal.signal(signal.SIGALRM, stop)
spec_path, cases_path, out_path, LIMIT_S, SEED = *sys.argv[1:4], float(sys.argv[4]), int(sys.argv[5])
cases = json.load(open(cases_path))
class Model:
    def __init__(self, name, size, rate, slo):
        self.model_name, self.model_size, self.req_rate, self.slo = name, size, rate, slo
    def __repr__(self):
        return f"Model({self.model_name})"
results = []
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(spec_path)))
try:
    spec = importlib.util.spec_from_file_location("evolved_program", spec_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = module.compute_model_placement
except BaseException as exc:
    json.dump({"load_error": f"{type(exc).__name__}: {exc}"[:300]}, open(out_path, "w"))
    sys.exit(0)
for case in cases:
    models = [Model(*row) for row in case["models"]]
    before = [(m.model_name, m.model_size, m.req_rate, m.slo) for m in models]
    # Same seeds as kvopt's per-call child: an unseeded randomized program must see the same draws.
    random.seed(SEED)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(SEED)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S * 1.5)  # a stuck call is stopped well past the limit
    try:
        answer = fn(case["gpu_num"], models)
        error = None
    except TooSlow:
        answer, error = None, "too slow"
    except BaseException as exc:
        answer, error = None, f"{type(exc).__name__}: {exc}"[:300]
    signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    after = []
    for m in models:
        try:
            after.append((m.model_name, m.model_size, m.req_rate, m.slo))
        except BaseException:
            after.append(None)
    row = {"error": error, "seconds": seconds, "mutated": [list(b) for b in before] != [list(a) if a else None for a in after],
           "is_dict": isinstance(answer, dict), "gpus": None}
    if isinstance(answer, dict):
        ids = {id(m): i for i, m in enumerate(models)}
        gpus = []
        for key, chosen in answer.items():
            integral = (isinstance(key, int) and not isinstance(key, bool)) or (
                type(key).__module__ == "numpy" and "int" in type(key).__name__)
            entry = {"key": int(key) if integral else None, "key_repr": repr(key)[:40], "items": None}
            if isinstance(chosen, (list, tuple)):
                entry["items"] = [ids.get(id(m), -1) for m in chosen]
            gpus.append(entry)
        row["gpus"] = gpus
    results.append(row)
json.dump({"cases": results}, open(out_path, "w"))
'''

CALL_LIMIT_S = 10.0


def oracle_verdict(row: dict[str, Any], case: dict[str, Any], capacity: Fraction) -> tuple[bool, str]:
    """The oracle's (valid, why not) for one answer."""
    if row["seconds"] > CALL_LIMIT_S or row["error"] == "too slow":
        return False, "too slow"
    if row["error"] is not None:
        return False, "raised"
    if row["mutated"]:
        return False, "changed its input"
    if not row["is_dict"]:
        return False, "not a dict"
    seen: collections.Counter[int] = collections.Counter()
    for gpu in row["gpus"]:
        if gpu["key"] is None or not 0 <= gpu["key"] < case["gpu_num"]:
            return False, "bad GPU id"
        if gpu["items"] is None:
            return False, "GPU value not a list"
        if -1 in gpu["items"]:
            return False, "foreign object"
        seen.update(gpu["items"])
        used = sum((Fraction(case["models"][i][1]) for i in gpu["items"]), Fraction(0))
        if used > capacity:
            return False, "memory overflow"
    if any(count > 1 for count in seen.values()):
        return False, "model placed twice"
    if len(seen) != len(case["models"]):
        return False, "model missing"
    return True, ""


def source_name(repo: str) -> str:
    """A manifest's repository, or what to say when the code index did not name it (``unknown``)."""
    return repo if repo != "unknown" else "repositories not recorded (found by content in a code index)"


def prism_success(row: dict[str, Any]) -> bool:
    """The prism evaluator's notion: the call returned a dict of lists without raising."""
    return row["error"] is None and row["is_dict"] and all(g["items"] is not None for g in row["gpus"])


def run_oracle(program: Path, cases_file: Path, work: Path, seed: int) -> dict[str, Any]:
    harness = work / "harness.py"
    out = work / f"{program.stem}.json"
    command = [sys.executable, str(harness), str(program), str(cases_file), str(out), str(CALL_LIMIT_S), str(seed)]
    bwrap = shutil.which("bwrap")
    if bwrap:  # the programs are public but untrusted: read-only everywhere except the work folder
        command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", str(work),
                   str(work), "--unshare-net", "--die-with-parent", *command]
    try:
        subprocess.run(command, capture_output=True, timeout=900, cwd=work)
        return json.loads(out.read_text())
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        return {"load_error": f"oracle run failed: {exc}"}


def main() -> int:
    from kvopt.bench.cases import load_all
    from kvopt.bench.child import PROGRAM_SEED
    from kvopt.bench.evaluate import judge
    from kvopt.bench.machine import cpu_model
    from kvopt.bench.results import method_records
    from kvopt.bench.runner import RunSettings
    from kvopt.bench.executors import LocalExecutor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--suite", default="adrs50")
    parser.add_argument("--manifest", help="JSON list of {file, repo, path}: counts programs per repository")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="reports/verdicts.md")
    args = parser.parse_args()

    programs = sorted(p for p in Path(args.folder).glob("*.py") if not p.name.startswith("_"))
    suite = load_all([args.suite])[0]
    # Prism programs assume 80 GB GPUs (their GPU_MEM_SIZE): only such cases are compared.
    chosen = [i for i in suite.instances if set(i.gpu_mem_gb) == {80}]
    cases = [{"name": i.name, "gpu_num": i.num_gpus,
              "models": [[m.name, m.size_gb, m.req_rate, m.slo] for m in i.models]} for i in chosen]
    capacities = {i.name: {80} for i in chosen}

    document = judge([args.suite], (), [str(p) for p in programs], RunSettings(), keep_going=True,
                     executor=LocalExecutor(args.jobs))
    kvopt_load_failures = {Path(f["program"]).name: f["reason"] for f in document["load_failures"]}
    by_program = {Path(m["name"]).name: {r["case"]: r for r in method_records(document, m["name"])}
                  for m in document["methods"]}

    disagreements_oracle: list[str] = []
    prism_vs_kvopt: dict[str, list[str]] = collections.defaultdict(list)
    totals = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="kvopt-verdicts-") as tmp:
        work = Path(tmp)
        (work / "harness.py").write_text(HARNESS)
        cases_file = work / "cases.json"
        cases_file.write_text(json.dumps(cases))
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:  # subprocesses: threads suffice
            oracles = list(pool.map(lambda program: run_oracle(program, cases_file, work, PROGRAM_SEED), programs))
        for program, oracle in zip(programs, oracles):
            name = program.name
            if "load_error" in oracle or name in kvopt_load_failures:
                totals["programs not loadable"] += 1
                if ("load_error" in oracle) != (name in kvopt_load_failures):
                    disagreements_oracle.append(f"{name}: load — kvopt {kvopt_load_failures.get(name)!r}, "
                                                f"oracle {oracle.get('load_error')!r}")
                continue
            totals["programs"] += 1
            records = by_program[name]
            for case, row in zip(cases, oracle["cases"]):
                record = records.get(case["name"])
                if record is None:
                    continue
                totals["cases"] += 1
                capacity = Fraction(next(iter(capacities[case["name"]])))
                valid, why = oracle_verdict(row, case, capacity)
                totals["valid (kvopt)"] += record["valid"]
                if valid != record["valid"]:
                    if record["failure"] == "timeout" and row["seconds"] > CALL_LIMIT_S / 2:
                        totals["timing differences (near the limit)"] += 1
                    else:
                        disagreements_oracle.append(f"{name}/{case['name']}: kvopt "
                                                    f"{'valid' if record['valid'] else record['failure']}, "
                                                    f"oracle {'valid' if valid else why}")
                if prism_success(row) and not record["valid"]:
                    prism_vs_kvopt[record["failure"]].append(f"{name}/{case['name']}: {record['reason']}")
                elif not prism_success(row) and record["valid"]:
                    prism_vs_kvopt["valid for kvopt, failed for prism"].append(f"{name}/{case['name']}")

    repos = None
    if args.manifest:
        manifest = json.loads(Path(args.manifest).read_text())
        repos = collections.Counter(entry["repo"] for entry in manifest
                                    if entry["file"] in {p.name for p in programs})
    lines = [
        "# kvopt's verdicts on evolved programs, checked against an independent oracle",
        "",
        f"Generated by `python scripts/check_verdicts.py` on {dt.date.today().isoformat()}: {cpu_model()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; suite {args.suite} "
        f"({len(cases)} cases with 80 GB GPUs), default limits (10 s, 2048 MB per call), default isolation.",
        "",
        f"- programs: {len(programs)} files ({totals['programs not loadable']} not loadable)"
        + (f", public evolved programs (not in this repository; not committed): "
           + ", ".join(f"{count} from {source_name(repo)}" for repo, count in repos.most_common()) if repos else "")
        + f"; (program, case) pairs checked: {totals['cases']}, valid by kvopt: {totals['valid (kvopt)']}",
        f"- kvopt vs the oracle: **{len(disagreements_oracle)} disagreements**"
        + (f"; {totals['timing differences (near the limit)']} cases near the 10 s limit timed out in one run "
           "and not the other" if totals["timing differences (near the limit)"] else ""),
        "",
    ]
    for line in disagreements_oracle[:40]:
        lines.append(f"  - {line}")
    lines += ["", "## Where kvopt and the prism evaluator disagree", "",
              "| kvopt's verdict | cases | programs | example |", "|---|--:|--:|---|"]
    for code, items in sorted(prism_vs_kvopt.items(), key=lambda kv: -len(kv[1])):
        example = items[0].replace("|", "\\|")
        lines.append(f"| {code} | {len(items)} | {len({i.split('/')[0] for i in items})} | {example[:160]} |")
    if repos:
        lines += ["", "## Programs per repository", "", "| repository | programs |", "|---|--:|"]
        lines += [f"| {source_name(repo)} | {count} |" for repo, count in repos.most_common()]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]), file=sys.stderr)
    return 1 if disagreements_oracle else 0


if __name__ == "__main__":
    sys.exit(main())
