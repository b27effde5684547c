"""The pieces of containment one by one: answer decoding, text cleaning, isolation choice, Landlock, cgroups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvopt.bench import isolation as iso
from kvopt.bench import landlock
from kvopt.bench.cgroups import create_group
from kvopt.bench.programs import ProgramSpec, clean_text, program_job, run_program
from kvopt.bench.report import md_text
from kvopt.bench.sandbox import ANSWER_LIMIT_BYTES, Limits, decode_answer, nesting_depth
from kvopt.model import Instance, KvoptError

HOSTILE = Path(__file__).parent / "programs" / "hostile"
CASE = Instance.build([{"name": "a", "size_gb": 30, "req_rate": 2, "slo": 1},
                       {"name": "b", "size_gb": 20, "req_rate": 1, "slo": 1}], [80, 80], name="two")


# -- the answer channel -------------------------------------------------------------------
@pytest.mark.parametrize("raw, why", [
    (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    (b'{"ok": true, "n": ' + b"9" * 5000 + b"}", "invalid JSON"),
    (b'{"ok": true, "x": NaN}', "invalid JSON"),
    (b"\xff\xfe", "invalid UTF-8"),
    (b'{"ok": "yes"}', "unexpected object"),
    (b"[1, 2]", "unexpected object"),
    (b" " * (ANSWER_LIMIT_BYTES + 1), "more than"),
])
def test_garbage_on_the_answer_channel_is_named_not_raised(raw, why):
    answer, error = decode_answer(raw)
    assert answer is None and why in error


def test_a_well_formed_answer_is_decoded():
    assert decode_answer(b'{"ok": true, "gpu_lists": [[0, [1]]]}') == ({"ok": True, "gpu_lists": [[0, [1]]]}, None)
    assert decode_answer(b"") == (None, None)


def test_nesting_depth_ignores_brackets_inside_strings():
    assert nesting_depth('{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth('["\\"[[["]') == 1


# -- text a program controls -------------------------------------------------------------------
def test_clean_text_removes_terminal_controls_and_bounds_the_length():
    text = "boom\n\x1b[2J\x1b[Hfake line\r\u202eevil\u200b" + "x" * 1000
    cleaned = clean_text(text)
    assert len(cleaned) == 300 and "\x1b" not in cleaned and "\n" not in cleaned and "\r" not in cleaned
    assert "\u202e" not in cleaned and "\u200b" not in cleaned and cleaned.startswith("boom [2J[Hfake line")
    tail = clean_text("first\nTraceback\x07\nlast", 10, keep_newlines=True)
    assert tail.endswith("\nlast") and "\x07" not in tail and len(tail) == 10


def test_markdown_text_cannot_open_links_html_or_cells():
    shown = md_text("[x](javascript:alert(1)) <b>|</b> *y*")
    assert "[x](" not in shown and "<b>" not in shown and "*y*" not in shown
    assert "\\[x\\]" in shown and "\\<b\\>" in shown and "\\|" in shown and "\\*y\\*" in shown


# -- limits and levels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("timeout, memory", [(float("nan"), 512), (float("inf"), 512), (0, 512), (-1, 512),
                                             (5, -1), (5, 0), (5, 100), (5, 10 ** 9), (5, 1.5)])
def test_limits_refuse_nonsense(timeout, memory):
    with pytest.raises(KvoptError):
        Limits(timeout_s=timeout, memory_mb=memory)


def test_no_containment_at_all_is_refused_naming_what_is_missing(monkeypatch):
    monkeypatch.setattr(iso, "bwrap_binary", lambda: None)
    monkeypatch.setattr(iso.landlock, "abi_version", lambda: 0)
    with pytest.raises(KvoptError) as err:
        iso.resolve_isolation("auto")
    message = str(err.value)
    assert "no bwrap binary" in message and "Landlock" in message and "--no-isolation" in message
    assert iso.resolve_isolation("none").level == "none"


def test_an_explicit_level_that_is_missing_is_refused(monkeypatch):
    monkeypatch.setattr(iso.landlock, "abi_version", lambda: 0)
    with pytest.raises(KvoptError, match="Landlock"):
        iso.resolve_isolation("landlock")


def test_program_paths_under_tmp_are_bound_back_but_not_tmp_itself(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text("")
    assert iso.hidden_paths([str(program), str(tmp_path), "/tmp", "/usr/lib"]) == [str(tmp_path)]
    assert iso.hidden_paths([str(program), "/tmp"]) == [str(program)]


# -- Landlock, checked in a throwaway process ------------------------------------------------------------
@pytest.mark.skipif(landlock.abi_version() < 6, reason="needs Landlock ABI 6 (signal scoping)")
def test_landlock_confines_writes_network_and_signals(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    script = f"""
import os, socket, sys
sys.path.insert(0, {str(Path(landlock.__file__).parent)!r})
import landlock
landlock.restrict_self({str(work)!r})
open({str(work / 'inside')!r}, 'w').write('ok')
results = []
for attempt in (lambda: open({str(tmp_path / 'outside')!r}, 'w'),
                lambda: os.kill(os.getppid(), 0),
                lambda: socket.socket().bind(('127.0.0.1', 0))):
    try:
        attempt()
        results.append('allowed')
    except OSError:
        results.append('denied')
print(','.join(results))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "denied,denied,denied", done.stderr
    assert (work / "inside").read_text() == "ok" and not (tmp_path / "outside").exists()


# -- the Landlock-only level end to end ----------------------------------------------------------------
@pytest.mark.skipif(landlock.abi_version() < 6, reason="needs Landlock ABI 6")
@pytest.mark.parametrize("program", ["kills_parent.py", "writes_outside.py"])
def test_landlock_only_level_still_scores_honestly(program, tmp_path):
    limits = Limits(timeout_s=20, memory_mb=1024, isolation=iso.resolve_isolation("landlock"))
    spec = ProgramSpec("file", str(HOSTILE / program), program)
    outcome = run_program(spec, CASE, limits)
    assert outcome.failure is None and sorted(n for names in outcome.gpu_lists.values() for n in names) == ["a", "b"]
    assert not (Path("/tmp") / "kvopt-hostile-marker.txt").exists()


def test_the_job_carries_only_the_parents_copy_of_the_instance():
    job = program_job(ProgramSpec("file", "/x/p.py", "p.py"), CASE)
    assert json.loads(json.dumps(job))["models"][0] == {"model_name": "a", "model_size": 30, "req_rate": 2, "slo": 1,
                                                        "cur_gpu_id": None}


# -- cgroups ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not iso.tree_hierarchies(), reason="no cgroup memory/pids controllers here")
def test_a_call_group_is_limited_killed_and_removed():
    group = create_group(iso.tree_hierarchies(), 128 << 20, 8)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            preexec_fn=lambda: group.add(os.getpid()))
    try:
        assert proc.pid in group.pids()
        group.remove()
        assert proc.wait(timeout=10) < 0
        assert all(not folder.exists() for folder in group.folders)
    finally:
        proc.kill()


# -- issue 17: confinement failures, the interface line, the run folder -----------------------------
@pytest.mark.skipif(landlock.abi_version() < 1, reason="needs Landlock")
def test_a_confinement_failure_is_the_parents_sandbox_verdict_and_no_program_runs(tmp_path):
    from dataclasses import replace

    broken = replace(iso.resolve_isolation("landlock"), seccomp=True, seccomp_libraries="libnothing.so.9:libc.so.6")
    marker = tmp_path / "ran.txt"
    program = tmp_path / "prog.py"
    program.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef compute_model_placement(g, m):\n    return {{}}\n")
    outcome = run_program(ProgramSpec("file", str(program), "prog.py"), CASE, Limits(isolation=broken))
    assert outcome.failure == "sandbox" and "could not confine the call" in outcome.reason
    assert not marker.exists()


def test_the_interface_line_is_split_from_the_answer_and_garbage_is_no_interface():
    from kvopt.bench.sandbox import split_channel

    assert split_channel(b'{"style": "prism"}\n{"ok": true}') == ({"style": "prism"}, b'{"ok": true}')
    assert split_channel(b'{"ok": true}') == (None, b'{"ok": true}')
    assert split_channel(b"[1\n{}")[0] is None
    assert split_channel(b"7" * 5000 + b"\n")[0] is None


def test_landlock_reading_rules_skip_call_folders_and_links_into_them(tmp_path):
    hidden = tmp_path / "tmpdir"
    (hidden / "kvopt-run-1-abc").mkdir(parents=True)
    (hidden / "other").mkdir()
    (tmp_path / "link-to-run").symlink_to(hidden / "kvopt-run-1-abc")
    (tmp_path / "link-to-parent").symlink_to(tmp_path)
    allowed = set(landlock.readable_outside([str(hidden)], "kvopt-run-"))
    assert str(hidden / "other") in allowed
    assert not {str(hidden / "kvopt-run-1-abc"), str(tmp_path / "link-to-run"), str(tmp_path / "link-to-parent"),
                str(hidden), str(tmp_path)} & allowed
