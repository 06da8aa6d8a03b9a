"""The built-in benchmark suite, shipped with the package so it runs without a checkout.

    pytest --pyargs pytest_trt.suite                     # the small trained models, CPU default
    pytest --pyargs pytest_trt.suite --trt-device cuda --trt-backend torch,onnxruntime,tensorrt

In a checkout, ``pytest benchmarks`` runs the same tests (``benchmarks/test_inference.py`` imports
them from here), so there is one copy of the suite.
"""
