"""Unit tests of the matrix: case ids, option parsing, which combinations are skipped and why."""

import pytest

from pytest_trt import backends, matrix, settings
from pytest_trt.case import Case


def test_case_id_is_readable_and_omits_the_eager_variant():
    assert Case("digits-cnn", "onnxruntime", "fp32", 8, "cpu").id == "digits-cnn-onnxruntime-fp32-bs8"
    assert Case(None, "torch", "fp16", 1, "cuda:0", "cuda-graph").id == "torch-fp16-bs1-cuda-graph"


def test_case_round_trips_through_a_dict_and_is_hashable():
    case = Case("m", "tensorrt", "int8", 32, "cuda:1", "cuda-graph")
    assert Case.from_dict(case.to_dict()) == case
    assert len({case, Case.from_dict(case.to_dict())}) == 1


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1,x", "1.5"])
def test_bad_batch_sizes_name_the_option(text):
    with pytest.raises(pytest.UsageError, match="--trt-batch-size"):
        settings.parse_batch_sizes(text)


def test_batch_sizes_keep_order_and_drop_duplicates():
    assert settings.parse_batch_sizes("8, 1,8,64") == (8, 1, 64)


def test_unknown_precision_lists_the_valid_ones():
    with pytest.raises(pytest.UsageError, match="fp32, tf32, fp16, bf16, int8, fp8"):
        settings.parse_list("precision", "fp32,int9", ("fp32", "tf32", "fp16", "bf16", "int8", "fp8"))


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("3", 0.03), ("12.5%", 0.125)])
def test_threshold_accepts_percent_and_fraction(text, value):
    assert settings.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-1%", "0%", "nan"])
def test_bad_threshold(text):
    with pytest.raises(pytest.UsageError, match="--trt-threshold"):
        settings.parse_threshold(text)


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cuda:-1"])
def test_bad_device(text):
    with pytest.raises(pytest.UsageError, match="auto, cpu, cuda or cuda:N"):
        settings.parse_device(text)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (Case("m", "onnxruntime", "bf16", 1, "cpu"), "bf16 is not supported by onnxruntime on cpu"),
        (Case("m", "torch", "int8", 1, "cuda:0"), "int8 is not supported by torch on cuda"),
        (Case("m", "torch", "fp16", 1, "cpu"), "fp16 is not supported by torch on cpu"),
        (Case("m", "tensorrt", "fp16", 1, "cpu"), "TensorRT runs on CUDA devices only"),
        (Case("m", "onnxruntime", "fp32", 1, "cpu", "channels-last"), "variant channels-last does not apply"),
        (Case("m", "torch", "fp32", 1, "cpu", "cuda-graph"), "CUDA graphs need a CUDA device"),
    ],
)
def test_unsupported_combinations_are_skips_with_a_reason(case, reason):
    assert reason in (matrix.unsupported(case) or "")


def test_supported_cpu_cases_have_no_skip_reason():
    assert matrix.unsupported(Case("m", "torch", "fp32", 8, "cpu")) is None
    assert matrix.unsupported(Case("m", "onnxruntime", "int8", 8, "cpu")) is None


def test_tensorrt_without_tensorrt_says_so():
    reason = matrix.unsupported(Case("m", "tensorrt", "fp16", 1, "cuda:0")) or ""
    if backends.get("tensorrt").missing("cuda:0") is None:
        pytest.skip("TensorRT is installed here")
    assert "tensorrt" in reason.lower()


def test_marker_values_are_checked():
    with pytest.raises(ValueError, match=r"precisions=.*int9"):
        matrix._check_marker_values(("torch",), ("int9",), ("eager",), (1,))


@pytest.mark.parametrize("marker, pattern", [
    ({"batch_sizes": [1, "x"]}, r"batch_sizes=.*'x' is not a positive integer"),
    ({"batch_sizes": 8}, r"batch_sizes=.*expected integers"),
    ({"backends": 3}, r"expected names"),
])
def test_marker_keywords_of_the_wrong_type_name_the_keyword(marker, pattern):
    with pytest.raises(ValueError, match=pattern):
        matrix.plan(settings.defaults(), "cpu", marker)


def test_marker_keywords_as_text_or_lists_plan_the_same_cases():
    as_text = matrix.plan(settings.defaults(), "cpu", {"backends": "torch", "batch_sizes": "1,4"})
    as_lists = matrix.plan(settings.defaults(), "cpu", {"backends": ["torch"], "batch_sizes": [1, 4]})
    assert [p.case for p in as_text] == [p.case for p in as_lists]
    assert {p.case.batch_size for p in as_text} == {1, 4}
