"""``--method exact`` side by side: the proof in a second process, LNS here, one budget."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time

from kvopt.anytime import ProofProcess, encode_frame, encode_placement, solve_exact_anytime, use_side_by_side
from kvopt.bounds import root_lower_bound
from kvopt.evaluate import check_placement
from kvopt.suites import load_suite


def test_side_by_side_needs_two_cpus_a_large_instance_and_a_budget() -> None:
    assert use_side_by_side(64, 60, 2)
    assert not use_side_by_side(64, 60, 1)  # one CPU: one after the other
    assert not use_side_by_side(30, 60, 8)  # small: the proof alone, usually in milliseconds
    assert not use_side_by_side(64, 2, 8)  # a second interpreter's start would eat the budget


def test_side_by_side_keeps_the_better_placement_and_the_proofs_bound() -> None:
    """From a poor (first-fit) start LNS improves at once: its placements reach the proof process."""
    from kvopt.heuristics.start import first_fit_start

    inst = next(i for i in load_suite("medium") if i.num_gpus == 16)
    result = solve_exact_anytime(inst, backend="branch-price", time_limit_s=8, side_by_side=True,
                                 warm_start=first_fit_start(inst))
    check_placement(inst, result.placement)
    anytime = result.details["anytime"]
    assert anytime["mode"] == "side by side" and "proof_failure" not in anytime
    assert anytime["incumbents_offered"] >= 1
    assert result.details["incumbents"]["taken"] >= 1 and result.details["incumbents"]["ignored"] == 0
    phases = {name: peak for name, _, peak, _ in anytime["phases"]}
    assert set(phases) == {"lns", "exact"}  # both ran, and the result is the better of the two
    assert result.peak_kvpr == min(phases.values())
    assert root_lower_bound(inst) <= result.lower_bound_exact <= result.peak_kvpr_exact
    assert result.seconds < 8 + 5  # the proof process keeps the deadline (within its overrun grace)


def _process(code: str) -> ProofProcess:
    """A stand-in proof process running ``code``, which may write to the pipe named ``FD``."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", code.replace("FD", str(write_fd))], pass_fds=(write_fd,))
    os.close(write_fd)
    return ProofProcess(process, read_fd)


def test_a_proof_process_that_dies_without_answering_is_reported() -> None:
    proof = _process("import sys; sys.exit(3)")
    proof.wait(time.monotonic() + 10)
    proof.stop()
    assert proof.result is None and "without an answer (exit code 3)" in proof.failure
    assert not proof.proved()  # a dead proof process does not stop the LNS side


def test_a_proof_process_that_overruns_is_killed() -> None:
    proof = _process("import time; time.sleep(60)")
    start = time.monotonic()
    proof.wait(start + 0.5)
    proof.stop()
    assert proof.result is None and "killed" in proof.failure
    assert proof.process.returncode is not None and time.monotonic() - start < 10


def test_a_proof_process_that_answers_garbage_is_reported() -> None:
    proof = _process(f"import os; os.write(FD, {encode_frame(b'R', pickle.dumps('RuntimeError: boom'))!r})")
    proof.wait(time.monotonic() + 10)
    proof.stop()
    assert proof.result is None and proof.failure == "RuntimeError: boom"


def test_only_a_proof_stops_the_lns_side() -> None:
    """A proof process that ends early without a proof (its bisection ran out of questions) answers
    ``feasible``: LNS goes on; ``optimal`` stops it."""
    from kvopt.model import Result

    inst = load_suite("medium")[0]
    for status, proved in (("feasible", False), ("optimal", True)):
        answer = Result(inst.name, "exact", status, None, None)
        proof = _process(f"import os; os.write(FD, {encode_frame(b'R', pickle.dumps(answer))!r})")
        deadline = time.monotonic() + 10
        while not proof.closed and time.monotonic() < deadline:
            proof.proved()
        proof.stop()
        assert proof.closed and proof.result == answer and proof.proved() is proved


def test_side_by_side_ends_when_the_proof_does() -> None:
    """The proof answers early only with a proof; LNS then stops instead of running out the budget.
    The warm start may be a ``Placement``: both sides get it."""
    from kvopt.heuristics.start import first_fit_start
    from kvopt.model import Placement

    inst = next(i for i in load_suite("medium") if i.name == "medium_00")  # proven in a few seconds
    start = Placement(first_fit_start(inst))
    result = solve_exact_anytime(inst, backend="branch-price", time_limit_s=60, side_by_side=True,
                                 warm_start=start)
    assert result.status == "optimal" and result.gap == 0
    assert result.seconds < 30


def test_a_bad_warm_start_is_a_clear_error_in_either_mode() -> None:
    import pytest

    from kvopt.model import PlacementError

    inst = load_suite("medium")[4]
    for side_by_side in (True, False):
        with pytest.raises(PlacementError, match="3 entries for 70 models"):
            solve_exact_anytime(inst, time_limit_s=6, side_by_side=side_by_side, warm_start=(0, 1, 2))


def test_the_incumbent_feed_hands_out_the_newest_complete_placement() -> None:
    from kvopt.anytime import IncumbentFeed

    read_fd, write_fd = os.pipe()
    feed = IncumbentFeed(read_fd)
    assert feed.latest() is None  # nothing sent yet: no wait
    second = encode_frame(b"P", encode_placement((4, 5, 6)))
    os.write(write_fd, encode_frame(b"P", encode_placement((1, 2, 3))) + second[:-2])  # the second one cut
    assert feed.latest() == (1, 2, 3)
    assert feed.latest() is None  # handed out once
    os.write(write_fd, second[-2:] + encode_frame(b"P", b"not a placement"))
    assert feed.latest() == (4, 5, 6)  # the garbage frame after it is skipped
    os.close(write_fd)
    assert feed.latest() is None and feed.closed
    os.close(read_fd)


def test_offering_placements_never_waits_for_a_busy_proof_process() -> None:
    """A proof process inside a long question reads nothing: the pipe fills, ``offer`` still returns at
    once and keeps only the newest placement to send later."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.PIPE,
                               pass_fds=(write_fd,))
    os.close(write_fd)
    assert process.stdin is not None
    os.set_blocking(process.stdin.fileno(), False)
    proof = ProofProcess(process, read_fd)
    start = time.monotonic()
    for k in range(300):  # ~1.2 MB of placements, far above a pipe's buffer
        proof.offer(tuple([k % 7] * 2000))
    assert time.monotonic() - start < 5
    assert proof.offered == 300 and proof.outgoing  # the pipe is full: a line is waiting ...
    assert proof.pending == tuple([299 % 7] * 2000)  # ... and only the newest placement after it
    proof.stop()
    assert process.returncode is not None


def test_the_proof_processs_placements_and_answer_come_in_frames() -> None:
    """Placements found by the proof arrive one by one (newest wins, each handed out once); a frame cut
    by the process's death is no answer."""
    from kvopt.model import Result

    answer = Result("x", "exact", "feasible", None, None)
    stream = (encode_frame(b"P", encode_placement((0, 1))) + encode_frame(b"P", b"garbage")
              + encode_frame(b"P", encode_placement((1, 1))) + encode_frame(b"R", pickle.dumps(answer)))
    proof = _process(f"import os; os.write(FD, {stream!r})")
    proof.wait(time.monotonic() + 10)
    assert proof.received == 2 and proof.latest() == (1, 1) and proof.latest() is None
    assert proof.result == answer and not proof.failure
    proof.stop()
    cut = encode_frame(b"P", encode_placement((0, 1))) + encode_frame(b"R", pickle.dumps(answer))[:-3]
    proof = _process(f"import os; os.write(FD, {cut!r})")
    proof.wait(time.monotonic() + 10)
    proof.stop()
    assert proof.latest() == (0, 1) and proof.result is None and "without an answer" in proof.failure
