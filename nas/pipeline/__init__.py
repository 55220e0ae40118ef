"""The whole pipeline behind `python -m nas.search`: search -> select -> NetAdapt -> export -> compare -> report.

config   the run config (defaults <- --config file <- flags), each value with its origin
prepare  device, space, data and proxy, resolved before anything is written
runner   the one runner: a table of stages, pipeline.json, stage timing, resume
stages   the stages and their table (STAGES), the summary
rundir   where a run goes and which one --resume means
select, score_map, compare: what the stages compute
"""
