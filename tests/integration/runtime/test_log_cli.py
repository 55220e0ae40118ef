"""--quiet / --verbose through real commands: stderr changes, stdout (the --json line) does not.

The commands run in-process (their log handler writes to whatever sys.stderr is, which capsys
holds); one test runs the real entry point, where the handler meets a real stderr."""
import json

import pytest

from helpers import REFERENCE, check_user_error, run_cli, run_inprocess
from nas.runtime.log import NORMAL, setup_logging

SPEC = str(REFERENCE / "mobilenetv3_small.yaml")
OP_KEY = "stem-in:224x224x3-out:16-k:3-s:2-act:hswish"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _json_last_line(code: int, out: str, err: str) -> dict:
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert isinstance(result, dict)
    return result


@pytest.fixture(autouse=True)
def normal_logging():
    yield
    setup_logging(NORMAL)  # a --verbose run in this process leaves debug on for the tests after it


@pytest.fixture
def timings(tmp_path):
    """time_ops.py output with ops only: importing it says (info) that the table stays uncalibrated."""
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"unit": "ms", "device": {"cpu": "test"},
                                "entries": [{"kind": "op", "key": OP_KEY, "median": 1.0, "p10": 0.9, "p90": 1.2,
                                             "n": 6}]}))
    return path


@pytest.mark.parametrize("where", ["before", "after"])
def test_latency_import_info_quiet_verbose(tmp_path, timings, where, capsys):
    def run(*flags):
        sub = ["import", "--device", "board", "--timings", str(timings), "--out", str(tmp_path / "b.yaml"), "--json"]
        return run_inprocess(["nas.latency", *(list(flags) + sub if where == "before" else sub + list(flags))],
                             capsys)

    default, quiet, verbose = run(), run("--quiet"), run("--verbose")
    results = [_json_last_line(*r) for r in (default, quiet, verbose)]
    assert results[0] == results[1] == results[2] and results[0]["ops"] == 1
    assert _lines(default[2]) == [f"[nas] {timings} has no whole-network timings: the table stays uncalibrated"]
    assert quiet[2] == ""
    assert "DEBUG   nas.latency.portable:" in verbose[2] and "INFO    nas.latency.portable:" in verbose[2]


def test_inspect_verbose_shows_debug_only_with_the_flag():
    """The real entry point: the same rules on a real stderr."""
    default = run_cli("nas.inspect", SPEC, "--device", "pixel1", "--json")
    verbose = run_cli("nas.inspect", SPEC, "--device", "pixel1", "--json", "--verbose")
    quiet = run_cli("nas.inspect", SPEC, "--device", "pixel1", "--json", "-q")
    results = [_json_last_line(p.returncode, p.stdout, p.stderr) for p in (default, verbose, quiet)]
    assert results[0] == results[1] == results[2]
    assert default.stderr == "" and quiet.stderr == ""
    assert "DEBUG   nas.latency.devices: device pixel1" in verbose.stderr


def test_human_summary_is_unchanged_by_the_flags(capsys):
    outs = {run_inprocess(["nas.inspect", SPEC, *flags], capsys)[1] for flags in ([], ["--quiet"], ["--verbose"])}
    assert len(outs) == 1 and "params" in outs.pop()


@pytest.mark.parametrize("args, needle", [
    (["nas.inspect", "{missing}", "--verbose"], "missing.yaml"),
    (["nas.inspect", SPEC, "--device", "nowhere", "--verbose"], "nowhere"),
    (["nas.latency", "--verbose", "import", "--device", "x", "--timings", "{bad}", "--out", "{out}"], "timings.json"),
    (["nas.latency", "import", "--device", "x", "--timings", "{bad}", "--out", "{out}", "-v"], "timings.json"),
    (["nas.latency", "import", "--quiet", "--verbose"], "--verbose"),
])
def test_a_user_error_is_still_one_line_with_verbose(tmp_path, args, needle, capsys):
    bad = tmp_path / "timings.json"
    bad.write_text('{"entries": [{"key": "a", "median": -1}]}')
    names = {"missing": tmp_path / "missing.yaml", "bad": bad, "out": tmp_path / "x.yaml"}
    code, _, err = run_inprocess([a.format(**names) for a in args], capsys)
    check_user_error(code, err, needle)
    assert not (tmp_path / "x.yaml").exists()


def test_a_quiet_build_is_quiet_in_its_calibrating_child_too(tmp_path):
    """`build --quiet` measures, then calibrates in a fresh process: that child shows no bars either."""
    from helpers import DATA

    proc = run_cli("nas.latency", "build", "--device", "host", "--space", str(DATA / "micro_space.yaml"),
                   "--table", str(tmp_path / "t.yaml"), "--calibration-samples", "1", "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["measured"] > 0
    assert proc.stderr.strip() == "", proc.stderr
