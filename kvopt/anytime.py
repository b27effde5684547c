"""Anytime exact solving: the bisection proof (``kvopt.exact``) with an LNS primal side (``kvopt.lns``).

``--method exact`` must never hand back a worse placement than ``--method lns``
with the same budget, and its bound must be at least what either proves.  The
proof alone cannot promise that: on 16+ GPUs one feasibility question near the
optimum can take the whole budget while the placement stays the pipeline's.

**Side by side** (the default with two or more CPUs, above ``PROOF_FIRST_MAX_MODELS``
models and from ``SIDE_BY_SIDE_MIN_S`` seconds): the proof runs in a second process
(``python -m kvopt.anytime``, a fresh interpreter) for the whole budget while this
process runs what ``--method lns`` runs (the same sub-solver), for the whole budget or until the
proof process answers with a proof.  The two exchange placements both ways: each time LNS
lowers its peak, the placement goes to the proof process (a frame on its stdin, never
waiting for it), whose bisection takes it before its next question when it beats its own
(``solve_exact(incumbents=...)``); each better placement a proof question finds comes back
(``solve_exact(on_improve=...)``, a ``P`` frame on the answer pipe) and LNS continues from it
when it beats the current one (``solve_lns(incumbents=...)``).  Measured on the five 16-24-GPU
``medium`` cases every version proves in 60 s (``reports/frontier.md``): 5-17 s both ways,
5-57 s with LNS's placements going one way, 16-23 s without exchange (``medium_06`` sits at
the edge: proven once in 54 s one way, not in three 60 s runs both ways).  Single runs: when
LNS's placements arrive changes the questions asked, so times vary (``medium_07``, both ways:
5-36 s over seven runs).  ``combine`` then
keeps the better placement
and the larger bound, so the placement is never worse than LNS alone (up to the
noise of two processes sharing a machine) and the bound never weaker than the
proof's.  A proof process that crashes or overruns its deadline by
``OVERRUN_GRACE_S`` is killed and reported in ``details.anytime``; the LNS result
stands.  Measured in
``reports/frontier.md``: before this, a split LNS run (below) was behind one long
LNS run on 3 of 22 medium/large cases.

**One after the other** (one CPU, short budgets, or ``side_by_side=False``): the
budget is shared (``plan_budget``):

1. instances above ``PROOF_FIRST_MAX_MODELS`` models: LNS first, for
   ``LNS_FIRST_SHARE`` of the budget, from the warm start or the pipeline.  The
   shares follow the proof's strength: with the branch-and-bound knapsack an 80 %
   LNS share was needed to keep up with LNS alone; since exact pricing by dynamic
   programming (compiled), this schedule proves 5 of the 12 16-32-GPU medium
   optima in 9-18 s (reports/frontier.md, 60 s, "one after the other");
2. the exact bisection, warm-started by the best placement so far, each backend
   question capped at ``PER_QUESTION_SHARE`` of the budget after step 1 (a stuck
   question returns ``unknown``; the driver then keeps asking below it), ending
   ``LNS_LAST_SHARE`` of the budget before the limit;
3. if the proof did not finish: LNS again from the exact run's best placement,
   for the rest (at least ``LNS_LAST_SHARE``: the bisection's questions below an
   undecided one raise the bound but rarely the placement).

Above ``PROOF_SHARE_MAX_MODELS`` models (beyond 32 GPUs × ~4 models) the proof
rarely decides anything in a minute and LNS makes better use of the time: LNS
first for ``LNS_FIRST_SHARE_LARGE`` of the budget, the proof, LNS for the last
``LNS_LAST_SHARE_LARGE``
(measured on ``large_01``, 64 GPUs × 271 models, 60 s: with the medium shares
exact was 0.027 % behind LNS alone, with these 0.003 % — an LNS run split in two
does not retrace one long run, so no share guarantees "never behind LNS").

Small instances (at most ``PROOF_FIRST_MAX_MODELS`` models) skip step 1: their
proof usually takes milliseconds, and the result is then exactly the exact solver's.
Instances with demand scenarios run the proof alone (LNS does not know that objective).

``combine`` merges the runs: the placement with the smallest exact peak, the
largest certified bound, ``optimal`` iff some run proved it or the peak equals the
bound.  Every number is re-evaluated by ``kvopt.evaluate``.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from kvopt.evaluate import check_placement, evaluate
from kvopt.model import Instance, KvoptError, Placement, Result, relative_gap

PROOF_FIRST_MAX_MODELS = 40  # up to here the proof runs first (and usually alone)
LNS_FIRST_SHARE = 0.1
PER_QUESTION_SHARE = 0.5
LNS_LAST_SHARE = 0.2  # kept for the final LNS phase: the proof phase stops before it
PROOF_SHARE_MAX_MODELS = 200  # above this the proof rarely pays: LNS first for LNS_FIRST_SHARE_LARGE
LNS_FIRST_SHARE_LARGE = 0.8
LNS_LAST_SHARE_LARGE = 0.15
MIN_PHASE_S = 0.5  # a phase shorter than this is skipped
SIDE_BY_SIDE_MIN_S = 5.0  # below this the second process's start (~1-2 s of imports) costs too much of the budget
OVERRUN_GRACE_S = 5.0  # the proof process may end this late (a knapsack call is not interrupted) before a kill


@dataclass(frozen=True)
class BudgetPlan:
    """Seconds for the LNS phase before the proof (0: none), the per-question cap of the proof (None: none)
    and the seconds kept for the LNS phase after it (0: none)."""

    lns_first_s: float
    per_question_s: float | None
    lns_last_s: float = 0.0


def plan_budget(num_models: int, time_limit_s: float) -> BudgetPlan:
    """How ``solve_exact_anytime`` splits ``time_limit_s`` (see the module docstring)."""
    if num_models <= PROOF_FIRST_MAX_MODELS:
        return BudgetPlan(0.0, None)
    large = num_models > PROOF_SHARE_MAX_MODELS
    lns_first = (LNS_FIRST_SHARE_LARGE if large else LNS_FIRST_SHARE) * time_limit_s
    lns_first = lns_first if lns_first >= MIN_PHASE_S else 0.0
    return BudgetPlan(lns_first, PER_QUESTION_SHARE * (time_limit_s - lns_first),
                      (LNS_LAST_SHARE_LARGE if large else LNS_LAST_SHARE) * time_limit_s)


def _peak_key(result: Result) -> tuple[int, Fraction]:
    """Order placements by exact peak (no placement last, an infinite peak just before)."""
    if result.placement is None:
        return (2, Fraction(0))
    peak = result.peak_kvpr_exact
    return (1, Fraction(0)) if peak == math.inf else (0, peak)


def combine(instance: Instance, runs: Sequence[Result], *, method: str = "exact",
            seconds: float = 0.0) -> Result:
    """The best of several runs on ``instance``: smallest exact peak, largest certified bound.

    A run's bound is a proof whatever its placement, so the bounds combine by max;
    ``optimal`` when a run proved its placement optimal and that placement is the one
    kept (then the bound is the peak), or when the kept peak equals the bound.
    """
    best = min(runs, key=_peak_key)
    bounds = [r.lower_bound_exact for r in runs if r.lower_bound_exact is not None]
    bound = max(bounds) if bounds else None
    if best.placement is None:
        return replace(best, method=method, seconds=seconds)
    ev = evaluate(instance, best.placement)
    peak = ev.peak_kvpr_exact
    proven = any(r.status == "optimal" and _peak_key(r) == _peak_key(best) for r in runs)
    if bound is not None and bound >= peak:
        proven, bound = True, peak
    if proven:
        bound = peak  # the optimum (+inf included)
    lower = float(bound) if bound is not None else None
    gap = relative_gap(peak, bound)
    return replace(best, method=method, status="optimal" if proven else "feasible",
                   peak_kvpr=ev.peak_kvpr, peak_kvpr_exact=peak, lower_bound=lower, lower_bound_exact=bound,
                   gap=gap, seconds=seconds)


def use_side_by_side(num_models: int, time_limit_s: float, cpus: int | None) -> bool:
    """Whether ``solve_exact_anytime`` runs the proof and LNS in two processes by default."""
    return (cpus or 1) >= 2 and num_models > PROOF_FIRST_MAX_MODELS and time_limit_s >= SIDE_BY_SIDE_MIN_S


def solve_exact_anytime(instance: Instance, *, backend: str = "auto", solver: str = "highs",
                        time_limit_s: float = 60.0, seed: int = 0, progress: Any = None,
                        warm_start: Placement | Sequence[int] | None = None,
                        side_by_side: bool | None = None) -> Result:
    """Exact bisection with an LNS primal side on one budget (module docstring); method ``exact``.

    ``side_by_side``: ``None`` decides by ``use_side_by_side`` (CPUs, size, budget).
    ``details`` are the exact run's, plus ``anytime``: the mode, the phases run
    (``(name, status, peak, seconds)``) and the budget plan.
    """
    from kvopt.exact import solve_exact
    from kvopt.lns import solve_lns

    if instance.scenarios:
        # LNS minimises one demand vector's peak, not the worst scenario's: the proof alone.
        return solve_exact(instance, backend=backend, solver=solver, time_limit_s=time_limit_s,
                           warm_start=warm_start, seed=seed, progress=progress)
    # A warm start as a validated Placement (PlacementError names what is wrong with it).
    given = None if warm_start is None else Placement(check_placement(instance, warm_start))
    if side_by_side is None:
        side_by_side = use_side_by_side(instance.num_models, time_limit_s, os.cpu_count())
    if side_by_side:
        return _side_by_side(instance, backend=backend, solver=solver, time_limit_s=time_limit_s, seed=seed,
                             warm_start=given, progress=progress)
    clock = time.perf_counter()
    plan = plan_budget(instance.num_models, time_limit_s)
    runs: list[Result] = []
    start: Placement | None = given
    if plan.lns_first_s > 0:
        try:
            first = solve_lns(instance, time_limit_s=plan.lns_first_s, seed=seed, start=given)
        except KvoptError:
            pass  # no start placement: the exact driver decides feasibility itself
        else:
            runs.append(first)
            start = first.placement
    left = time_limit_s - (time.perf_counter() - clock) - plan.lns_last_s
    exact = solve_exact(instance, backend=backend, solver=solver, time_limit_s=max(left, 0.01),
                        per_solve_limit_s=plan.per_question_s, warm_start=start, seed=seed, progress=progress)
    runs.append(exact)
    left = time_limit_s - (time.perf_counter() - clock)
    if exact.status == "feasible" and exact.placement is not None and left >= MIN_PHASE_S:
        runs.append(solve_lns(instance, time_limit_s=left, seed=seed, start=exact.placement))
    result = combine(instance, runs, method="exact", seconds=time.perf_counter() - clock)
    phases = [(r.method, r.status, r.peak_kvpr, round(r.seconds, 3)) for r in runs]
    details = {**exact.details, "anytime": {"mode": "one after the other", "phases": phases,
                                            "lns_first_s": round(plan.lns_first_s, 3),
                                            "per_question_s": plan.per_question_s}}
    return replace(result, details=details)


def _side_by_side(instance: Instance, *, backend: str, solver: str, time_limit_s: float, seed: int,
                  warm_start: Placement | None, progress: Any = None) -> Result:
    """The proof in a second process, ``--method lns`` here, both for the whole budget; then ``combine``.

    ``progress`` follows the LNS side (``kvopt.lns.LnsProgress`` events): the proof process reports
    only at its end."""
    from kvopt.lns import solve_lns

    clock = time.perf_counter()
    deadline = time.monotonic() + time_limit_s  # CLOCK_MONOTONIC: the same clock in both processes
    start = None if warm_start is None else warm_start.gpu_of
    proof = ProofProcess.start(ProofJob(instance, backend, solver, deadline, seed, start,
                                        PER_QUESTION_SHARE * time_limit_s))
    runs: list[Result] = []
    try:
        try:
            # What ``solve(method="lns", backend=backend)`` runs: the same sub-solver, the same budget,
            # unless the proof process settles the instance first; placements go both ways.
            runs.append(solve_lns(instance, time_limit_s=time_limit_s, seed=seed, start=warm_start, backend=backend,
                                  progress=progress, stop_when=proof.proved, on_improve=proof.offer,
                                  incumbents=proof.latest))
        except KvoptError:
            pass  # no start placement: the proof decides feasibility itself
        if not (runs and runs[0].status == "optimal"):  # LNS met a proven bound: nothing left to wait for
            proof.wait(deadline + OVERRUN_GRACE_S)
    finally:
        proof.stop()
    if proof.result is not None:
        runs.append(proof.result)
    if not runs:
        raise KvoptError(f"exact: the proof process failed ({proof.failure}) and LNS found no start placement")
    result = combine(instance, runs, method="exact", seconds=time.perf_counter() - clock)
    phases = [(r.method, r.status, r.peak_kvpr, round(r.seconds, 3)) for r in runs]
    anytime: dict[str, Any] = {"mode": "side by side", "phases": phases, "incumbents_offered": proof.offered,
                               "proof_placements": proof.received}
    if proof.failure:
        anytime["proof_failure"] = proof.failure
    base = proof.result.details if proof.result is not None else runs[0].details
    return replace(result, details={**base, "anytime": anytime})


@dataclass(frozen=True)
class ProofJob:
    """What the proof process needs (sent pickled on its stdin): ``deadline`` is ``time.monotonic()`` time."""

    instance: Instance
    backend: str
    solver: str
    deadline: float
    seed: int
    start: tuple[int, ...] | None
    per_question_s: float


def encode_placement(gpu_of: Sequence[int]) -> bytes:
    """A placement as the payload of a ``P`` frame: the GPU of each model, space-separated."""
    return " ".join(str(int(g)) for g in gpu_of).encode()


def decode_placement(payload: bytes) -> tuple[int, ...] | None:
    """``encode_placement``'s payload back (``None`` if it is not a list of integers)."""
    try:
        return tuple(int(token) for token in payload.split())
    except ValueError:
        return None


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    """One message between the two processes: a kind byte (``J`` the job, on the proof process's stdin;
    ``P`` a better placement, on either side; ``R`` the answer, on the answer pipe), the payload's
    length (8 bytes, big-endian), the payload."""
    return kind + len(payload).to_bytes(8, "big") + payload


def split_frames(buffer: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The complete ``(kind, payload)`` frames at the start of ``buffer``, and the incomplete rest."""
    frames = []
    while len(buffer) >= 9:
        size = int.from_bytes(buffer[1:9], "big")
        if len(buffer) < 9 + size:
            break
        frames.append((buffer[:1], buffer[9:9 + size]))
        buffer = buffer[9 + size:]
    return frames, buffer


@dataclass
class IncumbentFeed:
    """The proof process's side of its stdin after the job: LNS's placements, one ``P`` frame each.

    ``latest()`` reads what has arrived without blocking and returns the newest complete
    placement not handed out yet (``None`` if none); payloads that are not a list of
    integers are skipped (the driver validates the rest against the instance).
    """

    fd: int
    pending: bytes = b""
    closed: bool = False

    def latest(self) -> tuple[int, ...] | None:
        while not self.closed and select.select([self.fd], [], [], 0.0)[0]:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.closed = True
            self.pending += chunk
        frames, self.pending = split_frames(self.pending)
        for kind, payload in reversed(frames):
            placement = decode_placement(payload) if kind == b"P" else None
            if placement is not None:
                return placement
        return None


@dataclass
class ProofProcess:
    """The proof process seen from here: its answer pipe (``encode_frame`` messages: the proof's better
    placements, then its answer), read without blocking the LNS side, and its stdin, where the job goes
    (a ``J`` frame) and then LNS's better placements (``offer``).

    ``result`` (a ``Result``) or ``failure`` (why there is none) once the pipe is closed;
    ``latest()`` the newest placement the proof found and LNS has not taken yet.
    """

    process: subprocess.Popen
    read_fd: int
    buffer: bytes = b""
    incoming: tuple[int, ...] | None = None
    received: int = 0
    closed: bool = False
    result: Result | None = None
    failure: str = ""
    outgoing: bytes = b""  # the part of an incumbent frame not yet written
    pending: tuple[int, ...] | None = None  # the newest placement not yet queued
    offered: int = 0

    @classmethod
    def start(cls, job: ProofJob) -> "ProofProcess":
        """``python -m kvopt.anytime FD``: a fresh interpreter (no fork of solver threads, and unlike
        multiprocessing's spawn it never re-runs the caller's ``__main__``); the answer comes back on FD."""
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)  # where this kvopt is imported from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            process = subprocess.Popen([sys.executable, "-m", "kvopt.anytime", str(write_fd)],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(write_fd,),
                                       env=env)
        finally:
            os.close(write_fd)
        assert process.stdin is not None
        payload = pickle.dumps(job)
        try:
            process.stdin.write(encode_frame(b"J", payload))
            process.stdin.flush()
        except OSError:
            pass  # the process died at once: wait() reports it
        os.set_blocking(process.stdin.fileno(), False)  # incumbents never make the LNS side wait
        return cls(process, read_fd)

    def offer(self, gpu_of: Sequence[int]) -> None:
        """Hand a better placement to the proof process (the newest wins if the pipe is full)."""
        self.pending = tuple(gpu_of)
        self.offered += 1
        self._flush()

    def _flush(self) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        if not self.outgoing and self.pending is not None:
            self.outgoing, self.pending = encode_frame(b"P", encode_placement(self.pending)), None
        while self.outgoing:
            try:
                written = os.write(stdin.fileno(), self.outgoing)
            except BlockingIOError:
                return  # the proof process is inside a question: the rest goes at the next call
            except OSError:
                self.outgoing, self.pending = b"", None  # the process is gone: wait() reports it
                return
            self.outgoing = self.outgoing[written:]
            if not self.outgoing and self.pending is not None:
                self.outgoing, self.pending = encode_frame(b"P", encode_placement(self.pending)), None

    def read(self, timeout_s: float) -> None:
        """Read what the pipe has within ``timeout_s`` and decode the complete messages."""
        if self.closed or not select.select([self.read_fd], [], [], max(0.0, timeout_s))[0]:
            return
        chunk = os.read(self.read_fd, 1 << 16)
        self.buffer += chunk
        self._decode()
        if chunk:
            return
        self.closed = True
        if self.result is None and not self.failure:  # died before its answer, or in the middle of it
            self.process.wait(timeout=5)
            self.failure = f"ended without an answer (exit code {self.process.returncode})"

    def _decode(self) -> None:
        frames, self.buffer = split_frames(self.buffer)
        for kind, payload in frames:
            if kind == b"P":
                placement = decode_placement(payload)
                if placement is not None:
                    self.incoming, self.received = placement, self.received + 1
            elif kind == b"R":
                try:
                    answer = pickle.loads(payload)
                except Exception:  # noqa: BLE001 - reported, never trusted
                    self.failure = "sent an unreadable answer"
                    continue
                if isinstance(answer, Result):
                    self.result = answer
                else:
                    self.failure = str(answer)

    def latest(self) -> tuple[int, ...] | None:
        """The newest placement the proof process found since the last call (``None`` if none)."""
        self.read(0.0)
        placement, self.incoming = self.incoming, None
        return placement

    def proved(self) -> bool:
        """Whether the proof process has answered with a proof (``optimal`` or ``infeasible``)."""
        self._flush()
        self.read(0.0)
        return self.result is not None and self.result.status in ("optimal", "infeasible")

    def wait(self, kill_at: float) -> None:
        """Read until the answer is complete or ``kill_at`` (monotonic) passes (then: ``failure``)."""
        while not self.closed:
            left = kill_at - time.monotonic()
            if left <= 0:
                self.failure = "overran its deadline: killed"
                return
            self.read(left)

    def stop(self) -> None:
        """Close the pipes and reap the process: a second to end after answering, else killed."""
        os.close(self.read_fd)
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass  # unwritten incumbent bytes to a process that is gone
        try:
            self.process.wait(timeout=1.0 if self.closed else 0.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _proof_main(write_fd: int) -> None:
    """The proof process: read a ``ProofJob`` on stdin, run ``solve_exact`` until its deadline, answer on ``write_fd``."""
    from kvopt.exact import solve_exact

    stdin = sys.stdin.fileno()
    header = _read_exactly(stdin, 9)  # the ``J`` frame of ``encode_frame``
    job: ProofJob = pickle.loads(_read_exactly(stdin, int.from_bytes(header[1:], "big")))
    feed = IncumbentFeed(stdin)
    with os.fdopen(write_fd, "wb") as out:

        def announce(gpu_of: tuple[int, ...]) -> None:
            try:
                out.write(encode_frame(b"P", encode_placement(gpu_of)))
                out.flush()
            except OSError:
                pass  # the parent is gone: the answer will not be read either

        try:
            answer: Result | str = solve_exact(
                job.instance, backend=job.backend, solver=job.solver,
                time_limit_s=max(0.01, job.deadline - time.monotonic()), per_solve_limit_s=job.per_question_s,
                warm_start=job.start, seed=job.seed, incumbents=feed.latest, on_improve=announce)
        except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent reports it
            raise SystemExit(130) from None
        except Exception as exc:  # noqa: BLE001 - reported by the parent, which keeps the LNS result
            answer = f"{type(exc).__name__}: {exc}"
        out.write(encode_frame(b"R", pickle.dumps(answer)))


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise SystemExit("kvopt.anytime: the job ended early on stdin")
        data += chunk
    return data


if __name__ == "__main__":
    _proof_main(int(sys.argv[1]))
