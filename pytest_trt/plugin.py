"""pytest11 entry point: options and thin hooks only (no torch/onnxruntime/tensorrt imports)."""
