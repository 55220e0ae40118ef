"""NetAdapt: shrink per-layer widths until the network meets the target latency.

`python -m nas.netadapt` runs it on its own; the pipeline runs it after the search.
"""
