"""What ``trt_ab`` does for one test item: both sides prepared, measured interleaved in this process
and in ``--trt-ab-processes`` fresh ones, decided, recorded on the item, and failed on a regression.

The item's result is a ``CaseResult`` of the candidate's case (B's timing from the rounds) with the
comparison in ``CaseResult.ab``, so it rides on the test report to the controller as every case
result does (pytest-xdist included) and lands in the results file and the reports.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from pytest_trt import checks, remeasure
from pytest_trt.ab import arms, decide, measure, store
from pytest_trt.ab.record import AbArm, AbProcess, AbResult
from pytest_trt.backends.base import Runner
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.jsontypes import plain
from pytest_trt.model import ModelSpec
from pytest_trt.records import Accuracy, BuildInfo, CaseResult, CaseState, JSONDict, case_key
from pytest_trt.sampling import CaseTimeout, Deadline
from pytest_trt.verdict import Outcome

CUDA_PROCESSES = 2  # --trt-ab-processes auto on CUDA: each process picks its own kernels at start-up


# --trt-ab-instances auto: two builds of one model differ by where they landed (up to 2 % on an H100,
# 3 % for a small CPU model: lab/results/ab_h100, ab_cpu_hog); a CPU build costs little, so more pairs
CUDA_INSTANCES = 4
CPU_INSTANCES = 8


def instance_pairs(ctx: Context, sides: Sequence[arms.Side] = ()) -> int:
    """How many pairs of runner instances share a process's rounds: the option, else 4 on CUDA and 8 on
    the CPU, and 1 where a side is torch-compile (each new build of it compiles again, for minutes)."""
    wanted = ctx.settings.ab_instances
    if wanted is not None:
        return wanted
    if any(side.case.backend == "torch-compile" for side in sides):
        return 1
    return CUDA_INSTANCES if ctx.device.startswith("cuda") else CPU_INSTANCES


def fresh_processes(ctx: Context) -> int:
    """How many fresh processes repeat the measurement: the option, else 2 on CUDA and 0 on the CPU."""
    wanted = ctx.settings.ab_processes
    if wanted is not None:
        return wanted
    return CUDA_PROCESSES if ctx.device.startswith("cuda") else 0


def arms_of(request: pytest.FixtureRequest, reference: object, candidate: object) -> tuple[arms.Arm, arms.Arm, bool]:
    """The two arms from the call, else from ``@pytest.mark.trt_ab(reference=..., candidate=...)``."""
    marker = request.node.get_closest_marker("trt_ab")
    kwargs = dict(marker.kwargs) if marker else {}
    if reference is None and candidate is None:
        reference, candidate = kwargs.get("reference"), kwargs.get("candidate")
    try:
        return (arms.as_arm(reference, "trt_ab(reference=...)"), arms.as_arm(candidate, "trt_ab(candidate=...)"),
                bool(kwargs.get("compare_outputs", True)))
    except arms.ArmError as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None


def stored_files(ctx: Context) -> Callable[[ModelSpec], Mapping[str, Path]]:
    """How a ``BASELINE`` side finds the files its baseline kept."""
    def find(spec: ModelSpec) -> Mapping[str, Path]:
        where = ctx.settings.ab_artifacts or ctx.settings.baseline
        if where is None:
            raise pytest.fail.Exception("trt_ab(reference=BASELINE): no baseline to read it from: give "
                                        "--trt-ab-artifacts PATH or --trt-baseline PATH", pytrace=False)
        try:
            return store.lookup(store.folder_of(where), spec.name)
        except store.StoreError as exc:
            raise pytest.fail.Exception(f"trt_ab(reference=BASELINE): {exc}", pytrace=False) from None

    return find


def run(request: pytest.FixtureRequest, ctx: Context, case: Case, spec: ModelSpec, reference: object,
        candidate: object, compare_outputs: bool | None = None) -> AbResult:
    from pytest_trt import fixtures, judging

    arm_a, arm_b, marked_compare = arms_of(request, reference, candidate)
    compare = marked_compare if compare_outputs is None else compare_outputs
    threshold = judging.policy(ctx, fixtures._marker(request), None).threshold
    limits = fixtures._accuracy_limits(request, ctx)
    nodeid = request.node.nodeid
    with fixtures._recorded(request, case, spec, ctx):
        sides = [arms.side(arm, role, case, spec, ctx.artifacts, stored_files(ctx))
                 for arm, role in ((arm_a, "A"), (arm_b, "B"))]
    phases: dict[str, float] = {}
    ctx.progress.case(nodeid, sides[1].case.to_dict(), spec.name)
    runners: list[Runner] = []
    try:
        runners = _open_both(request, ctx, sides, phases)
        deadline = Deadline.start(ctx.settings.case_timeout_s)  # as trt_bench: from the prepared runners on

        def reopen() -> list[Runner]:
            closing = list(runners)
            runners.clear()  # a failure below leaves nothing for the finally to close twice
            for runner in closing:
                runner.close()
            runners.extend(_open_both(request, ctx, sides, {}))
            return list(runners)

        try:
            measured = measure.measure(ctx, sides, runners, limits, compare, threshold, _phases(ctx, phases),
                                       deadline, reopen, instance_pairs(ctx, sides))
        except CaseTimeout as exc:
            _timed_out(request, ctx, sides[1], exc, phases)
        except Exception as exc:
            fixtures._record_failure(request, sides[1].case, sides[1].spec, ctx, exc)
            raise
        infos = [plain(runner.info) for runner in runners]
    finally:
        for runner in runners:
            runner.close()
    processes, failures = [measured.process], list[str]()
    if not remeasure.in_child():
        for _ in range(fresh_processes(ctx)):
            with _phases(ctx, phases)("fresh_process"):
                found = _fresh(request.config, ctx, nodeid, failures)
            if found is not None:
                processes.append(found)
    ab = _comparison(ctx, sides, measured, processes, failures, threshold, infos)
    result = _case_result(ctx, sides[1], measured, ab, nodeid, infos[1], phases)
    fixtures.record(request, result)
    if ab.failed:
        pytest.fail(f"{b_id(sides)}: {result.message}" if ab.accuracy_failed else ab.message, pytrace=False)
    return ab


def _timed_out(request: pytest.FixtureRequest, ctx: Context, b: arms.Side, exc: CaseTimeout,
               phases: dict[str, float]) -> NoReturn:
    """Past ``--trt-case-timeout``: the item's result is a ``timeout`` of B's case, and the test fails."""
    from pytest_trt import fixtures

    done = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
    message = f"A/B {exc}" + (f" ({done})" if done else "")
    build = BuildInfo(phase_s=dict(phases), ran_on=fixtures._ran_on(ctx))
    nodeid = request.node.nodeid
    fixtures.record(request, CaseResult(b.case, nodeid, b.spec.name, CaseState.TIMEOUT, message, build=build,
                                        key=case_key(nodeid)))
    pytest.fail(f"{b.case.id}: {message}", pytrace=False)


def b_id(sides: Sequence[arms.Side]) -> str:
    return f"A/B {sides[1].case.id}"


def _open_both(request: pytest.FixtureRequest, ctx: Context, sides: Sequence[arms.Side],
               phases: dict[str, float]) -> list[Runner]:
    """Both runners, prepared in a random order: two instances of one model in one process can differ
    by a percent or two (where their memory landed), and whichever is made first must not be A every
    time, or that difference would be a bias of the method instead of noise between processes."""
    order = [0, 1] if secrets.randbits(1) else [1, 0]
    made: dict[int, Runner] = {}
    try:
        for i in order:
            made[i] = _open(request, ctx, sides[i], phases)
    except BaseException:
        for runner in made.values():
            runner.close()
        raise
    return [made[0], made[1]]


def _open(request: pytest.FixtureRequest, ctx: Context, side: arms.Side, phases: dict[str, float]) -> Runner:
    """One side's runner from its backend in the registry, prepared (export, build) before any timing."""
    from pytest_trt import backends, fixtures

    with fixtures._recorded(request, side.case, side.spec, ctx):
        runner = backends.get(side.case.backend).create_runner(side.case, side.spec, side.artifacts)
        start = time.perf_counter()
        runner.prepare()
        phases[f"prepare_{side.role}"] = time.perf_counter() - start
        runner.info.setdefault("prepare_s", phases[f"prepare_{side.role}"])
    return runner


def _phases(ctx: Context, phases: dict[str, float]) -> Callable[[str], AbstractContextManager[None]]:
    """Named phases with their seconds, mirrored to the progress file (an interrupted case says where)."""
    @contextmanager
    def phase(name: str) -> Iterator[None]:
        ctx.progress.phase(name, dict(phases))
        start = time.perf_counter()
        try:
            yield
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

    return phase


def _fresh(config: pytest.Config, ctx: Context, nodeid: str, failures: list[str]) -> AbProcess | None:
    """The item measured again in a fresh child pytest (``pytest_trt.remeasure``): its one process."""
    document = remeasure.fresh_document(config, nodeid, ctx.device, "A/B re-measurement results", failures)
    if document is None:
        return None
    key = case_key(nodeid)
    found = [c for c in document.cases if (c.key or case_key(c.nodeid)) == key and c.ab is not None]
    if not found or not found[0].ab or not found[0].ab.processes:
        failures.append(f"the fresh process did not measure {nodeid}"
                        + (f" ({found[0].status.value}: {found[0].message})" if found else ""))
        return None
    return dataclasses.replace(found[0].ab.processes[0], fresh=True)


def _comparison(ctx: Context, sides: Sequence[arms.Side], measured: measure.Measured, processes: list[AbProcess],
                failures: list[str], threshold: float, infos: Sequence[JSONDict]) -> AbResult:
    """The decision over every process, with both sides and B's accuracy against A."""
    a, b = sides
    decision = decide.decide(processes, threshold)
    outcome, detail = decision.outcome, decision.detail
    wanted = 1 + (0 if remeasure.in_child() else fresh_processes(ctx))
    if failures and outcome is Outcome.REGRESSION and len(processes) < wanted:
        outcome, detail = Outcome.INCONCLUSIVE, f"{detail}; could not re-measure in a fresh process: {failures[-1]}"
    problem = accuracy_problem(measured)

    def arm(side: arms.Side, median: float, info: JSONDict) -> AbArm:
        model_hash = info.get("model_hash")
        return AbArm(side.label, side.source, side.case, median, None if model_hash is None else str(model_hash))

    first = processes[0]
    ab = AbResult(outcome, threshold, decide.CONFIDENCE, arm(a, first.a_median_s, infos[0]),
                  arm(b, first.b_median_s, infos[1]), processes, decision.ratio, decision.ci, decision.spread,
                  measured.agreement, measured.reference_agreement, measured.task, bool(problem), failures)
    ab.message = " ".join(f"{outcome.value} {b.case.id}: {detail}; A = {a.source} ({a.case.id}), "
                          f"B = {b.source} ({b.case.id})".split())
    return ab


def accuracy_problem(measured: measure.Measured) -> str:
    """Why B's outputs or task metric (or A's own outputs) fail, or ''."""
    agreed, task, reference = measured.agreement, measured.task, measured.reference_agreement
    if agreed is not None and not agreed.passed:
        if agreed.nonfinite:
            return f"B: {agreed.reason}"
        return f"B's outputs disagree with A's: {checks.describe(agreed)}"
    if task is not None and not task.passed:
        return f"B's task metric fell from A's: {task.message}"
    if reference is not None and not reference.passed:
        return f"A against its fp32 reference: {checks.state(Accuracy(reference))[1]}"
    return ""


def _case_result(ctx: Context, b: arms.Side, measured: measure.Measured, ab: AbResult, nodeid: str,
                 info: JSONDict, phases: dict[str, float]) -> CaseResult:
    """The item's result: B's case and timing, its accuracy against A, the comparison."""
    from pytest_trt import fixtures

    accuracy = Accuracy(measured.agreement, measured.task, True)
    status, _ = checks.state(accuracy)
    if ab.accuracy_failed and status.value == "ok":
        status = checks.state(Accuracy(measured.reference_agreement))[0]
    build = BuildInfo.from_dict(info)
    build.phase_s = dict(phases)
    build.ran_on = fixtures._ran_on(ctx)
    message = accuracy_problem(measured)
    return CaseResult(b.case, nodeid, b.spec.name, status, message, measured.timings[1], accuracy, build=build,
                      key=case_key(nodeid), ab=ab)
