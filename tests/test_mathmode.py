"""TF32 switching goes through one API and restores the caller's setting (works without a GPU)."""

import pytest

from pytest_trt import mathmode

torch = pytest.importorskip("torch")


def test_tf32_context_sets_and_restores_both_matmul_and_conv():
    before = mathmode.set_tf32(False)
    mathmode.restore(before)
    with mathmode.tf32(True):
        inside = mathmode.set_tf32(True)  # returns the state in force: TF32 on
        assert "tf32" in inside or inside == (True, True)
    after = mathmode.set_tf32(False)
    mathmode.restore(after)
    assert after == before


def test_switching_never_mixes_legacy_and_new_apis():
    # torch refuses to report allow_tf32 once fp32_precision was set, and vice versa: a mix raises.
    with mathmode.tf32(False):
        with mathmode.tf32(True):
            pass
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        assert torch.backends.cuda.matmul.fp32_precision in ("none", "ieee", "tf32")
