"""Out-of-range numbers and flags that cannot take effect, through real commands: exit 2, one line, no
traceback (the in-process checks are in tests/unit/project/test_security.py)."""
from helpers import REFERENCE, assert_user_error, run_cli
from helpers.malformed import oversized_spec


def test_seeds_targets_and_counts_out_of_range_are_one_line_and_exit_2():
    for args in (["nas.search", "--target-ms", "20", "--seed", "-1"], ["nas.latency", "validate", "--seed", "-3"],
                 ["nas.search", "--target-ms", "1e-310"], ["nas.search", "--target-ms", "20", "--seed", str(2**40)],
                 ["nas.latency", "validate", "--samples", "99999999"], ["nas.train", "x.yaml", "--workers", "100000"],
                 ["nas.proxies", "audit", "--samples", "10", "--reference-seeds", "1000"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_a_flag_that_cannot_take_effect_is_refused():
    proc = run_cli("nas.netadapt", "--spec", "mobilenetv3_small", "--target-ms", "10", "--budget", "smoke",
                   "--address", "10.0.0.1:6379")
    assert proc.returncode == 2 and "--address" in proc.stderr and "--parallel ray" in proc.stderr, proc.stderr


def test_a_spec_of_absurd_size_is_one_line_from_a_command(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(oversized_spec(10**6))  # every block within its bounds, 1e9 parameters in all
    assert_user_error(run_cli("nas.inspect", str(huge)), "huge.yaml", "blocks[0]", "--max-params")


def test_max_macs_lowers_the_cap_for_the_command(tmp_path):
    out = tmp_path / "m.onnx"
    proc = run_cli("nas.export", str(REFERENCE / "mobilenetv3_small.yaml"), "--onnx", str(out), "--max-macs", "1e6")
    assert_user_error(proc, "mobilenetv3_small.yaml", "MACs, more than the cap of 1,000,000")
    assert not out.exists()
