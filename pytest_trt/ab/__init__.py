"""A/B mode: a reference (A) and a candidate (B) of one case, measured interleaved in one job, gated
on their ratio B/A.

A stored baseline compares tonight with another night, so machine drift, another machine of the
same type and each process's start-up choices all enter its ratio. Before a merge the question is
narrower: is this export, quantization recipe, fusion, precision or engine build slower than the
current one? Measured in the same process, on the same device, in alternating blocks a few
milliseconds apart, both sides see the same machine, and the ratio is what the change did.

    def test_new_export(trt_ab):
        trt_ab(reference="exports/main.onnx", candidate="exports/pr.onnx")

    def test_fp16(trt_ab):
        trt_ab(candidate=Arm(precision="fp16"))          # A: the test's own case

    def test_against_main(trt_ab):
        trt_ab(reference=BASELINE)                        # A: what --trt-save-artifacts kept

``interleave`` times the rounds, ``decide`` holds the statistic and the rule, ``arms`` turns what a
user names into runners through the backend registry, ``store`` keeps a baseline's model files,
``run`` is what the ``trt_ab`` fixture does. docs/design.md ("A/B") says why.
"""

from __future__ import annotations

from pytest_trt.ab.arms import BASELINE, Arm
from pytest_trt.ab.record import AbArm, AbProcess, AbResult

__all__ = ["BASELINE", "AbArm", "AbProcess", "AbResult", "Arm"]
