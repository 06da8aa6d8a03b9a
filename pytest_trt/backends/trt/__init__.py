"""TensorRT: engines built and cached from the case's ONNX, and the runner that executes them."""
