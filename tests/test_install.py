"""An installed kvopt (a wheel in a fresh virtual environment) judges like the checkout, from any directory.

The wheel is built from this checkout and installed into a venv that borrows the
dependencies from the running environment (``--system-site-packages``, offline)
but imports kvopt from the wheel.  Commands run from an empty temporary folder,
so nothing of the checkout can be found by accident.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKOUT_REPORT = REPO / "reports" / "adrs50" / "results.json"


def test_pyproject_lists_every_kvopt_package() -> None:
    """``[tool.setuptools] packages`` is explicit (to map instances/ in); it must not miss a subpackage."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "kvopt").rglob("__init__.py")}
    assert on_disk <= set(config["packages"]), f"add to pyproject.toml: {sorted(on_disk - set(config['packages']))}"
    assert config["package-dir"]["kvopt._instances"] == "instances"


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVOPT_INSTANCES", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in ok, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _build_wheel(dist: Path, env: dict[str, str]) -> Path:
    """``pip wheel`` of a clean copy of the checkout (a stale ``build/`` folder must not leak into it);
    without build isolation when this environment can build wheels itself."""
    import setuptools

    source = dist.parent / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("kvopt", "instances"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    can_build_offline = importlib.util.find_spec("wheel") is not None or \
        tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-w", str(dist), str(source)]
    if can_build_offline:
        cmd.insert(4, "--no-build-isolation")
    _run(cmd, dist.parent, env)
    wheels = list(dist.glob("kvopt-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(venv, environment, an empty working folder) with kvopt installed from a freshly built wheel."""
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    env = _clean_env(venv)
    wheel = _build_wheel(root / "dist", env)
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], root, env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
          "--disable-pip-version-check", str(wheel)], root, env)
    work = root / "work"
    work.mkdir()
    return venv, env, work


@pytest.mark.slow
def test_wheel_contains_the_suites_and_references(installed: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = installed
    probe = ("import json, kvopt, kvopt.suites as s; d = s.builtin_instances_dir(); "
             "print(json.dumps([kvopt.__file__, str(d), {n: len(s.load_reference(n)) for n in s.SUITES}]))")
    module_file, data_dir, references = json.loads(_run([str(venv / "bin" / "python"), "-c", probe], work, env).stdout)
    # The venv's kvopt is the wheel's, not the editable checkout the environment also has.
    assert Path(module_file).resolve().is_relative_to(venv.resolve()), module_file
    assert Path(data_dir).resolve().is_relative_to(venv.resolve()), data_dir
    for name in ("adrs50", "tight", "dense", "llm", "hetero", "small"):
        stored = json.loads((REPO / "instances" / name / "reference.json").read_text())["cases"]
        assert references[name] == len(stored) > 0
    suites = json.loads(_run(["kvopt", "suites", "--json"], work, env).stdout)
    assert {row["name"]: row["reference"] for row in suites}["adrs50"] is True


@pytest.mark.slow
def test_installed_evaluate_and_report_match_the_checkout(installed: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = installed
    checkout = json.loads(CHECKOUT_REPORT.read_text())["summary"]
    # A planted ./instances/adrs50 in the working directory must not be read for the suite name.
    planted = work / "instances" / "adrs50"
    planted.mkdir(parents=True)
    (planted / "reference.json").write_text(json.dumps({"cases": {f"adrs50_{i:02d}": {"status": "optimal",
                                                                                    "value": "1/1000"}
                                                                  for i in range(50)}}))
    program = REPO / "tests" / "programs" / "prism_greedy.py"
    proc = _run(["kvopt", "evaluate", str(program), "--suite", "adrs50", "--json"], work, env)
    assert "no stored reference" not in proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["cases"] == summary["valid"] == 50 and summary["missing_references"] == 0
    assert summary["mean_gap"] == pytest.approx(checkout["greedy"]["mean_gap"], rel=1e-12)
    assert summary["optimal"] == checkout["greedy"]["optimal"]

    proc = _run(["kvopt", "report", "--methods", "greedy,pipeline", "--out", "out", "--json"], work, env)
    summary = json.loads(proc.stdout)["summary"]
    for method in ("greedy", "pipeline"):
        for key in ("cases", "valid", "optimal", "mean_gap", "max_gap", "missing_references"):
            assert summary[method][key] == pytest.approx(checkout[method].get(key, 0), rel=1e-12), (method, key)
    assert summary["pipeline"]["optimal"] == 50
    assert (work / "out" / "report.md").is_file()

    # The committed CI baseline passes against the installed kvopt too (it failed with "136 -> 5").
    proc = _run(["kvopt", "regress", "--baseline", str(REPO / "reports" / "baseline" / "results.json"), "--json"],
                work, env)
    comparison = json.loads(proc.stdout)
    assert not comparison["regressed"] and comparison["not_comparable"] == []
    assert comparison["optimal"]["pipeline"]["now"] == comparison["optimal"]["pipeline"]["baseline"] > 0


@pytest.mark.slow
def test_installed_reference_writes_where_told(installed: tuple[Path, dict[str, str], Path]) -> None:
    """``kvopt reference`` writes ./instances/<suite>/ (or --out), never into the installed package."""
    venv, env, work = installed
    packaged = list(venv.rglob("_instances/small/reference.json"))
    assert len(packaged) == 1
    before = packaged[0].read_bytes()
    folder = work / "ref"
    folder.mkdir()
    _run(["kvopt", "reference", "--suite", "small", "--time-limit", "20"], folder, env)
    written = json.loads((folder / "instances" / "small" / "reference.json").read_text())
    assert {c["status"] for c in written["cases"].values()} == {"optimal"} and len(written["cases"]) == 20
    assert len(list((folder / "instances" / "small").glob("small_*.json"))) == 20
    assert packaged[0].read_bytes() == before
