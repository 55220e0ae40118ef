"""Hardware-aware neural architecture search that reproduces the MobileNetV3 search."""

__version__ = "0.1.0"
