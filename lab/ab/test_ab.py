"""What a PR job runs: the change (the test's model) against main, interleaved; and beside it the same
case timed alone, for the stored-baseline gate on the same processes (lab/ab/analyze.py)."""

from pytest_trt.ab import Arm


def test_latency(trt_bench, trt_runner):
    trt_bench(trt_runner)


def test_ab(trt_ab, main_model):
    # A: main's model; B: this checkout's. Their outputs differ when the depth does, so B is checked
    # against its own fp32 reference instead of A's outputs.
    trt_ab(reference=Arm(model=main_model, label="main"), compare_outputs=False)
