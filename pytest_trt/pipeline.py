"""Pipeline stages around the network: prepare → infer → post-process, and the whole pipeline.

A deployed model is more than its network: one user measured 51 ms per frame of which 18 ms were
inference, 6 ms preparing the data and 26 ms turning the output into answers. When a ``ModelSpec``
declares ``preprocess`` and/or ``postprocess``, a case also times, each under the timing engine's
rules (warm-up, minimum time and count, maximum time), on the host with ``perf_counter``:

- ``prepare``: ``preprocess`` of the raw batch (uint8 frames → network input);
- ``d2h``: the runner's ``to_host`` of the network's output, for runners whose outputs stay on a
  device (a CUDA stream); on the CPU the outputs are already host arrays and there is no copy;
- ``post``: ``postprocess(to_host(outputs))``: the answer from the network's output, the copy it
  needs included (``d2h`` says how much of it the copy is);
- ``total``: raw batch → answer, ``postprocess(to_host(run(load_inputs(preprocess(raw)))))``, the
  input's copy to the device and the wait for the network included: the end-to-end latency per
  batch and its throughput.

The network itself (``infer``) is the case's own ``timing``, measured as before (CUDA events on a
GPU), so its baseline entries stay comparable; the stages add to the case, they replace nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pytest_trt.backends.base import Runner
from pytest_trt.model import ModelSpec
from pytest_trt.records import Timing
from pytest_trt.timing import NO_DEADLINE, Budget, Deadline

PREPARE, D2H, POST, TOTAL = "prepare", "d2h", "post", "total"
STAGES = (PREPARE, D2H, POST, TOTAL)  # the order of tables and files; "infer" is the case's timing
GATED = (PREPARE, POST, TOTAL)  # d2h is part of post: gating it too would judge the copy twice
LABELS = {PREPARE: "prepare", "infer": "infer", D2H: "d2h", POST: "post-process", TOTAL: "total"}
STAGE_SEED_OFFSET = 2  # the stages' raw batch: other inputs than the check (seed + 1) and the timing
KEEP_SAMPLES = 1000  # per stage in the results file (the network keeps 5000)

# The timing engine's host path: ``timing.measure(fn, batch_size=..., budget=...)`` (a seam for tests).
HostTimer = Callable[..., Timing]


def has_stages(spec: ModelSpec) -> bool:
    return spec.preprocess is not None or spec.postprocess is not None


@dataclass(frozen=True)
class Staged:
    """The stages' timings, and what the last end-to-end call fed the network and got from it
    (its outputs are checked against fp32 like the timed network's, docs/design.md rule 11)."""

    timings: dict[str, Timing]
    inputs: np.ndarray
    outputs: np.ndarray


def network_input(spec: ModelSpec, raw: np.ndarray, batch_size: int) -> np.ndarray:
    """``preprocess(raw)`` (or ``raw`` itself without one), checked against what the network takes."""
    prepared = np.asarray(spec.preprocess(raw) if spec.preprocess is not None else raw)
    expected = (batch_size, *spec.input_shape)
    if prepared.shape != expected or not np.issubdtype(prepared.dtype, np.floating):
        raise ValueError(f"{spec.name}: preprocess returned {prepared.dtype} {prepared.shape}; the network takes "
                         f"floating-point {expected}")
    return prepared


def measure(runner: Runner, spec: ModelSpec, raw: np.ndarray, batch_size: int, budget: Budget,
            timer: HostTimer | None = None, deadline: Deadline = NO_DEADLINE) -> Staged:
    """Time each stage of ``spec`` around ``runner`` on the raw batch ``raw`` (the network input when
    the spec has no ``preprocess``). Call it inside the runner's stream context, after the network
    was timed: the runner is warm. Past ``deadline`` the stage being timed stops (``CaseTimeout``)."""
    from pytest_trt import timing

    time_it: HostTimer = timer if timer is not None else timing.measure
    budget = replace(budget, keep_samples=min(budget.keep_samples, KEEP_SAMPLES))

    def host(fn: Callable[[], object]) -> Timing:
        # no stream: the host clock
        return time_it(fn, batch_size=batch_size, budget=budget, deadline=deadline)

    pre, post = spec.preprocess, spec.postprocess
    inputs = network_input(spec, raw, batch_size)
    timings: dict[str, Timing] = {}
    if pre is not None:
        timings[PREPARE] = host(lambda: pre(raw))
    timings.update(_after_network(runner, inputs, post, host))
    last: list[np.ndarray] = []

    def end_to_end() -> object:
        outputs = runner.to_host(runner.run(runner.load_inputs(pre(raw) if pre is not None else raw)))
        last[:] = [outputs]
        return post(outputs) if post is not None else outputs

    timings[TOTAL] = host(end_to_end)
    return Staged({name: timings[name] for name in STAGES if name in timings}, inputs, last[0])


def _after_network(runner: Runner, inputs: np.ndarray, post: Callable[[np.ndarray], object] | None,
                   host: Callable[[Callable[[], object]], Timing]) -> dict[str, Timing]:
    """``d2h`` and ``post`` on one network output; it is freed on return, before the end-to-end loop
    makes its own (a segmentation batch's output can be gigabytes)."""
    outputs = runner.run(runner.load_inputs(inputs))
    timings: dict[str, Timing] = {}
    if runner.stream is not None:  # device-resident outputs: the copy is a cost of its own
        timings[D2H] = host(lambda: runner.to_host(outputs))
    if post is not None:
        timings[POST] = host(lambda: post(runner.to_host(outputs)))
    return timings
