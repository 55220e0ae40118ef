"""The last stage: ONNX export with verification, and the run report with its plots."""
