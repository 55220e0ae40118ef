"""The phone bundle end to end, with this host's LiteRT standing in for the phone: export-ops --format
tflite, time_tflite.py in its interpreter mode and in its adb mode (a fake `adb` on PATH that runs the
host's interpreter and answers in benchmark_model's own output format), import, predictions."""
import json
import os
import stat
import subprocess
import sys

import pytest

from nas.core.space import load_space
from nas.latency.calibrate_host import calibration_specs
from nas.latency.devices import get_device
from nas.latency.ops import ops_of, space_ops
from nas.latency.table import LatencyTable
from helpers import DATA, check_user_error, run_inprocess

MICRO = (DATA / "micro_space.yaml").read_text()  # tiny_space.yaml cut to five ops

# A stand-in for `adb`: pushes copy under $FAKE_ADB_ROOT, `shell benchmark_model ...` times the model
# with the host's LiteRT interpreter and prints what TFLite's benchmark_model prints (its
# BenchmarkLoggingListener and Stat::OutputToStream lines), every call logged to $FAKE_ADB_LOG.
FAKE_ADB = r'''#!{python}
import json, os, shlex, shutil, sys, time

root = os.environ["FAKE_ADB_ROOT"]
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")


def local(path):
    return os.path.join(root, path.lstrip("/"))


def stat_line(v):
    if len(set(v)) == 1:
        return f"count={{len(v)}} curr={{v[-1]}}" + ("(all same)" if len(v) > 1 else "")
    avg = sum(v) / len(v)
    std = int((sum(x * x for x in v) / len(v) - avg * avg) ** 0.5)
    return f"count={{len(v)}} first={{v[0]}} curr={{v[-1]}} min={{min(v)}} max={{max(v)}} avg={{avg:g}} std={{std}}"


def bench(flags):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    graph = flags["graph"]
    start = time.perf_counter()
    it = Interpreter(model_path=local(graph), num_threads=int(flags["num_threads"]))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    init = int((time.perf_counter() - start) * 1e6)
    def runs(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            it.invoke()
            out.append(max(1, int((time.perf_counter() - t) * 1e6)))
        return out
    w, n = int(flags["warmup_runs"]), int(flags["num_runs"])
    print("INFO: STARTING!")
    print("INFO: Log parameter values verbosely: [0]")
    print(f"INFO: Min num runs: [{{n}}]")
    print(f"INFO: Num threads: [{{flags['num_threads']}}]")
    print(f"INFO: Graph: [{{graph}}]")
    print(f"INFO: Loaded model {{graph}}")
    print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    print(f"INFO: The input model file size (MB): {{os.path.getsize(local(graph)) / 1e6:g}}")
    print(f"INFO: Initialized session in {{init / 1e3:g}}ms.")
    print(f"INFO: Running benchmark for at least {{w}} iterations and at least 0 seconds but terminate if exceeding 150 seconds.")
    warm = runs(w)
    print("INFO: " + stat_line(warm) + "\n")
    print(f"INFO: Running benchmark for at least {{n}} iterations and at least 0 seconds but terminate if exceeding 150 seconds.")
    timed = runs(n)
    print("INFO: " + stat_line(timed) + "\n")
    print(f"INFO: Inference timings in us: Init: {{init}}, First inference: {{warm[0]}}, "
          f"Warmup (avg): {{sum(warm) / len(warm):g}}, Inference (avg): {{sum(timed) / len(timed):g}}")
    print("INFO: Memory footprint delta from the start of the tool (MB): init=1.2 overall=3.4")


if args[0] == "push":
    os.makedirs(os.path.dirname(local(args[2])), exist_ok=True)
    shutil.copyfile(args[1], local(args[2]))
    print(f"{{args[1]}}: 1 file pushed.")
elif args[0] == "shell":
    cmd = shlex.split(" ".join(args[1:]))
    if cmd[0] == "mkdir":
        os.makedirs(local(cmd[-1]), exist_ok=True)
    elif cmd[0] == "getprop":
        print({{"ro.product.model": "FakePhone 7", "ro.soc.model": "SM0000"}}.get(cmd[1], ""))
    elif cmd[0].endswith("benchmark_model"):
        bench(dict(a[2:].split("=", 1) for a in cmd[1:]))
    else:
        sys.exit(f"/system/bin/sh: {{cmd[0]}}: not found")
else:
    sys.exit(f"adb: unknown command {{args[0]}}")
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """export-ops --format tflite of MICRO: five ops and two calibration networks."""
    from nas.latency.__main__ import main
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("bundle")
    space = folder / "micro.yaml"
    space.write_text(MICRO)
    out = folder / "ops"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["export-ops", "--space", str(space), "--out", str(out), "--format", "tflite",
                     "--calibration-samples", "1", "--json"]) == 0
    return space, out, json.loads(stdout.getvalue().strip().splitlines()[-1])


def test_bundle_holds_every_op_and_network_as_tflite(bundle):
    space_path, out, result = bundle
    space = load_space(space_path)
    networks = calibration_specs(space, 1, seed=0)
    keys = {op.key for op in space_ops(space)} | {op.key for s in networks for op in ops_of(s)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert result["format"] == "tflite" and result["ops"] == len(keys) and result["networks"] == 2
    assert manifest["format"] == "tflite" and manifest["precision"] == "fp32"
    assert len(manifest["entries"]) == len(keys) + 2
    assert all(e["file"].endswith(".tflite") and (out / e["file"]).is_file() for e in manifest["entries"])
    assert manifest["entries"][0]["input_shape"] == [1, 32, 32, 3]  # channels-last, as converted
    assert (out / "time_tflite.py").is_file() and not (out / "time_ops.py").exists()


def _import(timings, device, tmp_path, capsys):
    table_path = tmp_path / f"{device}.yaml"
    code, out, err = run_inprocess(["nas.latency", "import", "--device", device, "--timings", str(timings),
                                    "--out", str(table_path), "--json"], capsys)
    assert code == 0, err
    return LatencyTable.load(table_path), table_path


def test_interpreter_mode_round_trip(bundle, tmp_path, capsys):
    space_path, out, _ = bundle
    timings = tmp_path / "board.json"
    proc = subprocess.run([sys.executable, "time_tflite.py", "interpreter", "--rounds", "2", "--runs", "3",
                           "--name", "board", "--out", str(timings)], cwd=out, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    table, path = _import(timings, "board", tmp_path, capsys)
    assert table.device["name"] == "board" and table.device["runtime"].startswith("ai-edge-litert")
    assert table.device["format"] == "tflite" and table.calibration["fitted_on"] == 2
    assert all(t.n == 6 and t.median > 0 for t in table.ops.values())
    space = load_space(space_path)
    for spec in calibration_specs(space, 1, seed=0):
        p = get_device(str(path)).predict(spec)
        assert p.p10 <= p.ms <= p.p90 and p.ms > 0


def test_adb_mode_round_trip_with_a_fake_adb(bundle, tmp_path, capsys):
    space_path, out, _ = bundle
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "adb.log"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_ADB_ROOT": str(tmp_path / "phone"),
           "FAKE_ADB_LOG": str(log)}
    timings = tmp_path / "phone.json"
    proc = subprocess.run([sys.executable, str(out / "time_tflite.py"), "adb", "--rounds", "2", "--runs", "3",
                           "--warmup", "2", "--out", str(timings)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    manifest = json.loads((out / "manifest.json").read_text())
    pushed = [c for c in calls if c[0] == "push"]
    assert len(pushed) == len(manifest["entries"])
    benches = [c[1] for c in calls if c[0] == "shell" and "benchmark_model" in c[1]]
    assert len(benches) == 2 * len(manifest["entries"])  # one invocation per model per round
    assert all(b.startswith("/data/local/tmp/benchmark_model --graph=/data/local/tmp/nas_ops/op-") or
               "--graph=/data/local/tmp/nas_ops/net-" in b for b in benches)
    assert all("--num_threads=1" in b and "--num_runs=3" in b and "--warmup_runs=2" in b and "--min_secs=0" in b
               for b in benches)
    table, path = _import(timings, "phone", tmp_path, capsys)
    assert table.device["name"] == "phone" and table.device["runtime"] == "benchmark_model (adb)"
    assert table.device["model"] == "FakePhone 7"  # what the phone calls itself (getprop)
    assert table.device["cpu"] == "SM0000" and table.calibration["fitted_on"] == 2
    assert all(t.n == 6 and t.median > 0 for t in table.ops.values())
    seed = load_space(space_path).seed_spec()
    assert get_device(str(path)).predict(seed).ms > 0


def test_adb_mode_without_adb_says_so(bundle, tmp_path):
    _, out, _ = bundle
    proc = subprocess.run([sys.executable, str(out / "time_tflite.py"), "adb", "--adb", "no-such-adb",
                           "--out", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no-such-adb: not found on PATH" in proc.stderr
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("damage, needle", [
    (lambda t: t[: len(t) // 2], "not valid JSON"),
    (lambda t: t.replace('"median": ', '"median": -', 1), "median"),
    (lambda t: t.replace('"key": "stem-', '"key": "stom-', 1), "not an op key"),
])
def test_bad_timings_file_is_one_line(bundle, tmp_path, capsys, damage, needle):
    _, out, _ = bundle
    good = {"device": {"name": "p"}, "unit": "ms", "entries": [
        {"kind": e["kind"], "key": e["key"], "ops": e.get("ops"), "median": 1.0, "p10": 0.9, "p90": 1.2, "n": 6}
        for e in json.loads((out / "manifest.json").read_text())["entries"]]}
    path = tmp_path / "timings.json"
    path.write_text(damage(json.dumps(good)))
    code, _, err = run_inprocess(["nas.latency", "import", "--device", "p", "--timings", str(path),
                                  "--out", str(tmp_path / "p.yaml")], capsys)
    check_user_error(code, err, "timings.json", needle)
    assert not (tmp_path / "p.yaml").exists()
