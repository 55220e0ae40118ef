"""`python -m nas.search --target-ms A,B --proxy supernet`: a smoke family of two targets trains one
supernet, runs one search and NetAdapt per target on it, and writes a member run per target, a
report and the family plot; interrupted (Ctrl-C after the first target, kill -9 in the second)
and resumed, it loses and repeats nothing."""
from __future__ import annotations

import json
from dataclasses import fields

from helpers import DATA, assert_user_error, run_cli
from helpers.interrupt import interrupt_twice_then_finish
from nas.pipeline.results import MemberStage
from nas.runtime.jsonl import read_jsonl

TINY = DATA / "tiny_space.yaml"
TARGETS = (1.2, 1.5)  # inside the tiny space (0.98..1.71 ms on pixel1)
SAMPLES = 12


def run_family(tmp_path, fashion_mnist):
    out = tmp_path / "run"
    cmd = ["nas.search", "--target-ms", ",".join(map(str, TARGETS)), "--space", str(TINY), "--budget", "smoke",
           "--proxy", "supernet", "--samples", str(SAMPLES), "--cpus", "1", "--deploy", "none",
           "--data", str(fashion_mnist), "--out", str(out)]
    first, second = out / "1.2ms" / "summary.json", out / "1.5ms" / "pipeline.json"
    interrupt_twice_then_finish(cmd, out, first.exists, second.exists)
    # Once finished, --resume does nothing again and prints the family's JSON line.
    before = {p: p.stat().st_mtime_ns for p in out.glob("*ms/pipeline.json")}
    again = run_cli("nas.search", "--resume", "--out", str(out), "--json", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} != {} and all(
        p.stat().st_mtime_ns == t for p, t in before.items())  # no member stage ran again
    return out, json.loads(again.stdout.strip().splitlines()[-1])


def test_a_family_interrupted_twice_then_resumed(tmp_path, fashion_mnist):
    """One family run (Ctrl-C, kill -9, resume; then a --resume that does nothing) and every check on
    it, in one test: with xdist a module fixture would run once per worker."""
    family = run_family(tmp_path, fashion_mnist)
    check_one_supernet_serves_every_target(family)
    check_each_target_is_searched_once_and_lands_on_it(family)
    check_the_report_has_a_section_per_target_and_the_family_plot(family)
    check_a_supernet_of_another_space_is_refused_naming_the_target(family, tmp_path, fashion_mnist)


def check_one_supernet_serves_every_target(family):
    out, result = family
    state = json.loads((out / "family.json").read_text())["done"]
    assert set(state) == {"supernet-tiny", "1.2ms", "1.5ms", "report"}
    trained = state["supernet-tiny"]
    assert trained["trained"] and trained["targets"] == list(TARGETS) and result["supernets"] == [trained]
    for t in TARGETS:
        member = json.loads((out / f"{t:g}ms" / "pipeline.json").read_text())["done"]
        assert member["supernet"]["trained"] is False and member["supernet"]["checkpoint"] == trained["checkpoint"]
        # NetAdapt starts from the supernet's weights unless select had to widen the best sample (no path)
        assert member["netadapt"]["inherited"] == ("widened" not in member["select"]["note"])
    assert [p.name for p in out.iterdir() if p.name.startswith("supernet")] == ["supernet-tiny"]


def check_each_target_is_searched_once_and_lands_on_it(family):
    out, result = family
    assert result["targets"] == list(TARGETS) and [m["target_ms"] for m in result["family"]] == list(TARGETS)
    for t, m in zip(TARGETS, result["family"]):
        assert set(m) == {f.name for f in fields(MemberStage)} - {"seconds"}  # the keys a single-target run prints
        assert m["run_dir"] == str(out / f"{t:g}ms") and m["predicted_ms"] <= t
        assert [s["i"] for s in read_jsonl(out / f"{t:g}ms" / "search" / "samples.jsonl")] == list(range(SAMPLES))
        for key in ("final_spec", "onnx", "report"):
            assert (out / f"{t:g}ms" / m[key].rsplit("/", 1)[1]).is_file()
        kinds = [r["kind"] for r in m["comparison"]]
        assert kinds == ["final", "width_scaled"] and m["comparison"][0]["seeds"] == 2
    assert json.loads((out / "summary.json").read_text())["family"] == result["family"]


def check_the_report_has_a_section_per_target_and_the_family_plot(family):
    out, result = family
    report = (out / "report.md").read_text()
    assert result["report"] == str(out / "report.md") and result["plot"] == str(out / "family.png")
    assert (out / "family.png").stat().st_size > 10_000 and "![family](family.png)" in report
    for m in result["family"]:
        assert f"## {m['target_ms']:g} ms" in report and m["verdict"] in report
        assert f"[{m['target_ms']:g}ms](%gms/report.md)" % m["target_ms"] in report


def test_bad_family_targets_are_refused_before_anything_is_written(tmp_path, fashion_mnist):
    common = ["nas.search", "--budget", "smoke", "--data", str(fashion_mnist), "--out", str(tmp_path / "x")]
    for targets, needle in (("1.2,1.2", "must differ"), ("1.2,fast", "not a number"),
                            (",".join(str(1 + i / 10) for i in range(9)), "2 to 8 targets")):
        assert_user_error(run_cli(*common, "--space", str(TINY), "--target-ms", targets), "--target-ms", needle)
    assert not (tmp_path / "x").exists()


def check_a_supernet_of_another_space_is_refused_naming_the_target(family, tmp_path, fashion_mnist):
    """The tiny space's supernet, for a family whose first target `auto` gives MobileNetV3-Small."""
    out, _ = family
    assert_user_error(run_cli("nas.search", "--budget", "smoke", "--data", str(fashion_mnist), "--out",
                              str(tmp_path / "y"), "--target-ms", "15,50", "--proxy", "supernet", "--supernet",
                              str(out / "supernet-tiny")), str(out / "supernet-tiny"), "space tiny", "target 15 ms")
    assert not (tmp_path / "y").exists()
