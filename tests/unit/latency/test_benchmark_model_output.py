"""The parser of TFLite's benchmark_model output (what the phone bundle's adb mode reads)."""
from nas.latency.standalone_tflite_timer import parse_benchmark_output

# Real benchmark_model output: the --help-era format (no prefix), the INFO: prefix with percentiles and
# exponent notation, and the all-same statistics line of a run whose every run took the same time.
BENCH_PLAIN = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [./mobilenet_v1_1.0_224.tflite]
Loaded model ./mobilenet_v1_1.0_224.tflite
The input model file size (MB): 16.9008
Initialized session in 17.187ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=3512391

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
"""
BENCH_PERCENTILES = """\
INFO: Loaded model /usr/share/models/ssd_mobilenet_v2_coco.tflite
INFO: The input model file size (MB): 67.3128
INFO: Initialized session in 5.579ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=1 curr=1357602 p5=1357602 median=1357602 p95=1357602

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565 p5=1238753 median=1239807 p95=1247415

INFO: Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06, Inference (avg): 1.24027e+06
INFO: Memory footprint delta from the start of the tool (MB): init=6.36328 overall=109.832
"""
BENCH_ALL_SAME = """\
INFO: Running benchmark for at least 6 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=6 curr=41(all same)

INFO: Inference timings in us: Init: 812, First inference: 57, Warmup (avg): 44.5, Inference (avg): 41
"""


def test_the_plain_format_gives_init_first_warm_up_and_the_timed_runs():
    plain = parse_benchmark_output(BENCH_PLAIN)
    assert plain["init_us"] == 17187 and plain["first_us"] == 3512391 and plain["warmup_avg_us"] == 3.51239e6
    assert plain["avg_us"] == 2.95034e6 and plain["avg"] == 2.95034e6 and plain["count"] == 50
    assert plain["min"] == 2727568 and plain["std"] == 109798 and "median" not in plain


def test_the_info_format_gives_the_timed_runs_percentiles():
    pct = parse_benchmark_output(BENCH_PERCENTILES)
    assert pct["avg_us"] == 1.24027e6 and pct["count"] == 50  # the timed runs, not the warm-up line
    assert (pct["p5"], pct["median"], pct["p95"]) == (1238753, 1239807, 1247415)


def test_runs_that_all_took_the_same_time_have_no_spread():
    same = parse_benchmark_output(BENCH_ALL_SAME)
    assert same["avg"] == same["min"] == same["max"] == 41 and same["std"] == 0 and same["count"] == 6


def test_a_failed_benchmark_parses_to_nothing():
    assert parse_benchmark_output("ERROR: Could not open '/data/local/tmp/x.tflite'.\nBenchmarking failed.\n") is None
