"""NetAdapt: shrink per-layer widths until the network meets the target latency.

`python -m nas.netadapt` runs it on its own (`__main__`: flags and output); the pipeline runs it after
the search through `nas.netadapt.netadapt_run.run_netadapt`. The parts: `config` (NetAdaptConfig from a budget
of `nas.budgets`), `surgery` (knobs, admissible widths, filter inheritance), `proposals` (one per knob,
and their scores), `finetune` (the proxy task, in-process or as Ray Tune trials), `checkpoints` (the
run's log and checkpoints) and `run` (the loop).
"""
