"""Latency: ONNX Runtime timing, per-op lookup tables, prediction and device calibration."""
