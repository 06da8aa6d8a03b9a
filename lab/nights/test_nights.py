def test_latency(trt_bench, trt_runner):
    trt_bench(trt_runner)
