"""A corpus of malformed inputs: broken variants of every file kind the commands read.

Each case is (file name, content, words the one-line error must contain). Content is text or
bytes. The variants start from a valid file and break one thing, so the error must point at that
thing; the fuzz suite (test_malformed_inputs.py) feeds each to every command that reads the kind.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "search_spaces" / "reference" / "mobilenetv3_small.yaml").read_text()
SPACE = (ROOT / "tests" / "data" / "tiny_space.yaml").read_text()
CONFIG = (ROOT / "experiments" / "reproduce_small.yaml").read_text()
CALIBRATED = (ROOT / "latency_tables" / "pixel1.yaml").read_text()
MEASUREMENTS = (ROOT / "latency_tables" / "pixel1_published.yaml").read_text()


@dataclass(frozen=True)
class Bad:
    name: str            # file name; appears in the error line
    content: str | bytes
    needles: tuple = ()  # besides the file name, what the error must say (the field at fault)

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if isinstance(self.content, bytes):
            path.write_bytes(self.content)
        else:
            path.write_text(self.content)
        return path


MISSING = object()  # "delete the key"

# Values outside each kind of field's domain (a field that has a default is never given MISSING).
KERNEL = [None, "five", -3, 0, 4, 2.5, 13, True, [3]]
CHANNELS = [None, "wide", -8, 0, 2.5, 10**12, 10**30, True, [8]]
BOOLEAN = [None, "maybe", 2, [True]]
ACT = [None, "gelu", 3, ""]
STRIDE = [None, 3, 0, -1, "two", 1.5, True]
POSITIVE_MS = [None, "fast", -1, 0, math.nan, math.inf, True, [1]]


def _path_name(path: tuple) -> str:
    """("blocks", 1, "k") -> "blocks[1].k", as the error messages name fields."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _label(value) -> str:
    if value is MISSING:
        return "missing"
    if value is None or value is True or value == "":
        return {None: "null", True: "true", "": "blank"}[value]
    if isinstance(value, list):
        return "list-" + ("_".join(_label(v) for v in value) or "empty")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and abs(value) >= 10**6:
        return f"{'-' if value < 0 else ''}1e{len(str(abs(value))) - 1}"
    return str(value)[:16]


def field_cases(stem: str, base: dict, fields: list[tuple[tuple, list]], dump=None, suffix=".yaml") -> list[Bad]:
    """One broken file per (field, value): every field of a valid file given every kind of wrong value."""
    dump = dump or (lambda d: yaml.safe_dump(d, sort_keys=False, allow_unicode=True))
    cases = []
    for path, values in fields:
        for value in values:
            d = copy.deepcopy(base)
            node = d
            for part in path[:-1]:
                node = node[part]
            if value is MISSING:
                del node[path[-1]]
            else:
                node[path[-1]] = value
            name = f"{stem}-{_path_name(path).replace('[', '').replace(']', '')}-{_label(value)}{suffix}"
            cases.append(Bad(name.replace("/", "_"), dump(d), (_path_name(path),)))
    return cases


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old  # the corpus must break what it claims to break
    return text.replace(old, new, 1)


# Shared by every YAML kind: the file itself is broken.
def _broken_files(stem: str) -> list[Bad]:
    return [
        Bad(f"{stem}-empty.yaml", "", ("empty",)),
        Bad(f"{stem}-comments.yaml", "# nothing but a comment\n", ("empty",)),
        Bad(f"{stem}-syntax.yaml", "name: x\nblocks: [1, 2\n", ("YAML syntax error",)),
        Bad(f"{stem}-tabs.yaml", "name: x\n\tresolution: 224\n", ("YAML syntax error",)),
        Bad(f"{stem}-list.yaml", "- 1\n- 2\n", ("mapping",)),
        Bad(f"{stem}-scalar.yaml", "42\n", ("mapping",)),
        Bad(f"{stem}-binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", ("UTF-8",)),
    ]


def spec_cases() -> list[Bad]:
    s = SPEC
    return _broken_files("spec") + [
        Bad("spec-unknown-key.yaml", _swap(s, "resolution:", "resolutoin:"), ("resolutoin",)),
        Bad("spec-no-blocks.yaml", s.split("blocks:")[0] + "head: {conv: 576, act: hswish}\n", ("blocks",)),
        Bad("spec-blocks-scalar.yaml", s.split("blocks:")[0] + "blocks: 7\nhead: {conv: 576, act: hswish}\n",
            ("blocks",)),
        Bad("spec-blocks-empty.yaml", s.split("blocks:")[0] + "blocks: []\nhead: {conv: 576, act: hswish}\n",
            ("blocks",)),
        Bad("spec-even-kernel.yaml", _swap(s, "{k: 3, exp: 72", "{k: 4, exp: 72"), ("blocks[1].k",)),
        Bad("spec-kernel-text.yaml", _swap(s, "{k: 3, exp: 72", "{k: five, exp: 72"), ("blocks[1].k",)),
        Bad("spec-kernel-negative.yaml", _swap(s, "{k: 3, exp: 72", "{k: -3, exp: 72"), ("blocks[1].k",)),
        Bad("spec-kernel-float.yaml", _swap(s, "{k: 3, exp: 72", "{k: 3.5, exp: 72"), ("blocks[1].k",)),
        Bad("spec-stride-3.yaml", _swap(s, "se: false, act: relu, s: 2}", "se: false, act: relu, s: 3}"),
            ("blocks[1].s",)),
        Bad("spec-act-unknown.yaml", _swap(s, "se: false, act: relu, s: 2}", "se: false, act: gelu, s: 2}"),
            ("blocks[1].act",)),
        Bad("spec-se-text.yaml", _swap(s, "se: false, act: relu, s: 2}", "se: maybe, act: relu, s: 2}"),
            ("blocks[1].se",)),
        Bad("spec-block-missing-k.yaml", _swap(s, "{k: 3, exp: 72, ", "{exp: 72, "), ("blocks[1]", "k")),
        Bad("spec-block-null.yaml", _swap(s, "  - {k: 3, exp: 72, out: 24, se: false, act: relu, s: 2}",
                                          "  - null"), ("blocks[1]",)),
        Bad("spec-out-zero.yaml", _swap(s, "exp: 72, out: 24", "exp: 72, out: 0"), ("blocks[1].out",)),
        Bad("spec-exp-huge.yaml", _swap(s, "exp: 72, out: 24", "exp: 1e12, out: 24"), ("blocks[1].exp",)),
        Bad("spec-resolution-zero.yaml", _swap(s, "resolution: 224", "resolution: 0"), ("resolution",)),
        Bad("spec-resolution-huge.yaml", _swap(s, "resolution: 224", "resolution: 1000000000"), ("resolution",)),
        Bad("spec-resolution-nan.yaml", _swap(s, "resolution: 224", "resolution: .nan"), ("resolution",)),
        Bad("spec-resolution-bool.yaml", _swap(s, "resolution: 224", "resolution: true"), ("resolution",)),
        Bad("spec-resolution-text.yaml", _swap(s, "resolution: 224", "resolution: 224px"), ("resolution",)),
        Bad("spec-classes-negative.yaml", _swap(s, "num_classes: 1000", "num_classes: -5"), ("num_classes",)),
        Bad("spec-classes-huge.yaml", _swap(s, "num_classes: 1000", "num_classes: 1e12"), ("num_classes",)),
        Bad("spec-dropout.yaml", _swap(s, "dropout: 0.2", "dropout: 1.5"), ("head.dropout",)),
        Bad("spec-pool.yaml", _swap(s, "pool: avg", "pool: max"), ("head.pool",)),
        Bad("spec-no-stem.yaml", _swap(s, "stem: {out: 16, k: 3, s: 2, act: hswish}\n", ""), ("stem",)),
        Bad("spec-stem-scalar.yaml", _swap(s, "stem: {out: 16, k: 3, s: 2, act: hswish}", "stem: 16"), ("stem",)),
        Bad("spec-se-style.yaml", _swap(s, "se_style: mobilenetv3", "se_style: squeeze"), ("se_style",)),
        Bad("spec-name-control.yaml", _swap(s, 'name: "mobilenetv3_small"', 'name: "mobile\\tnet"'), ("name",)),
        Bad("spec-name-number.yaml", _swap(s, 'name: "mobilenetv3_small"', 'name: 7'), ("name",)),
        Bad("spec-too-small.yaml", _swap(s, "resolution: 224", "resolution: 4"), ("resolution",)),
    ] + field_cases("spec", yaml.safe_load(s), [
        (("blocks", 1, "k"), [MISSING, *KERNEL]),
        (("blocks", 1, "exp"), [MISSING, *CHANNELS]),
        (("blocks", 1, "out"), [MISSING, *CHANNELS]),
        (("blocks", 1, "se"), [MISSING, *BOOLEAN]),
        (("blocks", 1, "act"), [MISSING, *ACT]),
        (("blocks", 1, "s"), [MISSING, *STRIDE]),
        (("blocks", 1, "skip"), BOOLEAN),
        (("stem", "out"), [MISSING, *CHANNELS]),
        (("stem", "k"), KERNEL),
        (("stem", "s"), STRIDE),
        (("stem", "act"), ACT),
        (("head", "conv"), [MISSING, *CHANNELS]),
        (("head", "act"), [MISSING, *ACT]),
        (("head", "fc"), [v for v in CHANNELS if v not in (None, 0)]),  # null or 0: no FC layer
        (("head", "dropout"), [None, "half", -0.1, 1.0, math.nan, True]),
        (("head", "pool"), [None, "max", 3]),
        (("resolution",), [MISSING, None, "big", 0, 4, 99999, 224.5, True]),
        (("num_classes",), [None, "ten", 0, -5, 10**9, 10.5, True]),
        (("se_style",), [None, "squeeze", 3]),
        (("name",), [MISSING, None, "", 3, "tab\there", "x" * 300]),
    ])


def space_cases() -> list[Bad]:
    s = SPACE
    return _broken_files("space") + [
        Bad("space-unknown-key.yaml", _swap(s, "family: small", "family: small\nfamliy: large"), ("famliy",)),
        Bad("space-family.yaml", _swap(s, "family: small", "family: [small, large]"), ("family",)),
        Bad("space-no-stages.yaml", s.split("stages:")[0] + "head: {conv: 64, act: hswish, fc: 128}\n",
            ("stages",)),
        Bad("space-stages-empty.yaml", s.split("stages:")[0] + "stages: []\nhead: {conv: 64, act: hswish}\n",
            ("stages",)),
        Bad("space-choice-even-k.yaml", _swap(s, "k: [3, 5]", "k: [3, 4]"), ("choices.k",)),
        Bad("space-choice-empty.yaml", _swap(s, "k: [3, 5]", "k: []"), ("choices.k",)),
        Bad("space-choice-scalar.yaml", _swap(s, "k: [3, 5]", "k: 3"), ("choices.k",)),
        Bad("space-width-negative.yaml", _swap(s, "width: [1.0, 2.0]", "width: [-1.0, 2.0]"), ("choices.width",)),
        Bad("space-act-unknown.yaml", _swap(s, "act: [relu]", "act: [relu, gelu]"), ("choices.act",)),
        Bad("space-layers-negative.yaml", _swap(s, "{out: 16, layers: 1,", "{out: 16, layers: -4,"),
            ("stages[1].layers",)),
        Bad("space-stage-stride.yaml", _swap(s, "{out: 16, layers: 1, s: 2,", "{out: 16, layers: 1, s: 5,"),
            ("stages[1].s",)),
        Bad("space-stage-out-text.yaml", _swap(s, "{out: 16, layers: 1,", "{out: sixteen, layers: 1,"),
            ("stages[1].out",)),
        Bad("space-resolution-text.yaml", _swap(s, "resolution: 32", "resolution: big"), ("resolution",)),
        Bad("space-resolution-huge.yaml", _swap(s, "resolution: 32", "resolution: 99999999"), ("resolution",)),
    ] + field_cases("space", yaml.safe_load(s), [
        (("choices", "layers"), [[], 3, ["x"], [None], [99], [1, 1]]),
        (("choices", "k"), [["x"], [None], [4], [3, 3], [13]]),
        (("choices", "exp"), [[], 6, [0], [100], ["x"], [True]]),
        (("choices", "se"), [[], True, ["maybe"], [2]]),
        (("choices", "act"), [[], "relu", [3]]),
        (("choices", "width"), [[], 1.0, [0.01], [100.0], ["x"], [math.nan]]),
        (("choices", "skip"), [[], [3]]),
        (("stages", 1, "out"), [MISSING, *CHANNELS]),
        (("stages", 1, "layers"), [MISSING, None, 0, -4, 99, "two", 1.5, True]),
        (("stages", 1, "s"), [MISSING, *STRIDE]),
        (("stages", 1, "k"), [None, 4, "x", 13]),
        (("stages", 1, "exp"), [None, 0, -1, "x", 100]),
        (("stages", 1, "se"), BOOLEAN),
        (("stages", 1, "act"), ACT),
        (("stages", 1, "fixed"), ["yes", 2, None]),
        (("name",), [MISSING, None, "", 3]),
        (("reward_w",), [0.5, -3, "x", True, math.nan]),
        (("stem", "out"), [MISSING, None, "x", 0]),
        (("head", "conv"), [MISSING, None, 0, "x"]),
        (("num_classes",), [0, "x", 10**9]),
    ])


def config_cases() -> list[Bad]:
    c = CONFIG
    return _broken_files("config") + [
        Bad("config-unknown-key.yaml", _swap(c, "target_ms: 15.8", "target_msx: 15.8"), ("target_msx",)),
        Bad("config-target-zero.yaml", _swap(c, "target_ms: 15.8", "target_ms: 0"), ("target_ms",)),
        Bad("config-target-negative.yaml", _swap(c, "target_ms: 15.8", "target_ms: -3"), ("target_ms",)),
        Bad("config-target-text.yaml", _swap(c, "target_ms: 15.8", "target_ms: fast"), ("target_ms",)),
        Bad("config-target-nan.yaml", _swap(c, "target_ms: 15.8", "target_ms: .nan"), ("target_ms",)),
        Bad("config-target-inf.yaml", _swap(c, "target_ms: 15.8", "target_ms: .inf"), ("target_ms",)),
        Bad("config-target-huge.yaml", _swap(c, "target_ms: 15.8", "target_ms: 1e300"), ("target_ms",)),
        Bad("config-budget.yaml", _swap(c, "budget: default", "budget: huge"), ("budget",)),
        Bad("config-algorithm.yaml", _swap(c, "algorithm: controller", "algorithm: genetic"), ("algorithm",)),
        Bad("config-reward-w.yaml", _swap(c, "reward_w: -0.15", "reward_w: 0.5"), ("reward_w",)),
        Bad("config-seed.yaml", _swap(c, "seed: 0", "seed: -1"), ("seed",)),
        Bad("config-seed-text.yaml", _swap(c, "seed: 0", "seed: zero"), ("seed",)),
        Bad("config-samples.yaml", c + "samples: 0\n", ("samples",)),
        Bad("config-cpus.yaml", c + "cpus: 2.5\n", ("cpus",)),
        Bad("config-space.yaml", _swap(c, "space: mobilenetv3_small", "space: mobilenetv9"), ("mobilenetv9",)),
        Bad("config-device.yaml", _swap(c, "device: pixel1", "device: pixel99"), ("pixel99",)),
        Bad("config-device-list.yaml", _swap(c, "device: pixel1", "device: [pixel1]"), ("device",)),
        Bad("config-proxy.yaml", c + "proxy: oracle\n", ("proxy",)),
        Bad("config-dataset.yaml", c + "dataset: mnist-9000\n", ("dataset",)),
        Bad("config-data-missing.yaml", c + "data: /no/such/folder\n", ("/no/such/folder",)),
    ]


def _table_text(ops: dict, n_ops: int | None = None, unit: str = "ms", calibration: dict | None = None,
                extra: str = "") -> str:
    lines = ['device: {"name": "phone", "cpu": "test"}', f"unit: {unit}"]
    if calibration is not None:
        lines.append(f"calibration: {json.dumps(calibration)}")
    lines.append("ops:")
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in ops.items()]
    lines.append(f"n_ops: {len(ops) if n_ops is None else n_ops}")
    return "\n".join(lines) + "\n" + extra


GOOD_TIMING = {"median": 0.5, "p10": 0.45, "p90": 0.6, "n": 36}
OP = "stem-in:224x224x3-out:16-k:3-s:2-act:hswish"
CAL = {"scale": 1.1, "offset_ms": 0.01}


def table_cases() -> list[Bad]:
    """Device files: op lookup tables and calibrated models (given as --device PATH)."""
    ok = _table_text({OP: GOOD_TIMING}, calibration=CAL)
    return _broken_files("table") + [
        Bad("table-truncated.yaml", ok[: ok.index("n_ops")], ("n_ops", "truncated")),
        Bad("table-cut-mid-line.yaml", ok[: ok.index('"p90"') + 3], ("YAML syntax error",)),
        Bad("table-count.yaml", _table_text({OP: GOOD_TIMING}, n_ops=5, calibration=CAL), ("n_ops",)),
        Bad("table-unit.yaml", _table_text({OP: GOOD_TIMING}, unit="s", calibration=CAL), ("unit",)),
        Bad("table-unit-us.yaml", _table_text({OP: GOOD_TIMING}, unit="us", calibration=CAL), ("unit",)),
        Bad("table-median-negative.yaml", _table_text({OP: {**GOOD_TIMING, "median": -1}}, calibration=CAL),
            ("median",)),
        Bad("table-median-text.yaml", _table_text({OP: {**GOOD_TIMING, "median": "fast"}}, calibration=CAL),
            ("median",)),
        Bad("table-p10-missing.yaml", _table_text({OP: {"median": 0.5, "p90": 0.6, "n": 36}}, calibration=CAL),
            ("p10",)),
        Bad("table-order.yaml", _table_text({OP: {**GOOD_TIMING, "p10": 0.9}}, calibration=CAL), ("p10",)),
        Bad("table-ops-list.yaml", ok.replace(f'  {json.dumps(OP)}: {json.dumps(GOOD_TIMING)}', f"  - {OP}"),
            ("ops",)),
        Bad("table-unknown-key.yaml", ok + "comment: hi\n", ("comment",)),
        Bad("table-calibration-text.yaml", _table_text({OP: GOOD_TIMING}, calibration={"scale": "big",
                                                                                        "offset_ms": 0}),
            ("calibration.scale",)),
        Bad("table-calibration-missing.yaml", _table_text({OP: GOOD_TIMING}, calibration={"offset_ms": 0}),
            ("calibration.scale",)),
        Bad("table-calibration-negative.yaml", _table_text({OP: GOOD_TIMING}, calibration={"scale": -2,
                                                                                            "offset_ms": 0}),
            ("calibration.scale",)),
        Bad("table-missing-ops.yaml", ok, ("not in the table",)),
        Bad("model-kind.yaml", _swap(CALIBRATED, "kind: calibrated", "kind: psychic"), ("kind",)),
        Bad("model-coefficient-text.yaml", _swap(CALIBRATED, '"pw_macs": 0.17660160444169823',
                                                 '"pw_macs": "lots"'), ("coefficients",)),
        Bad("model-no-coefficients.yaml", "\n".join(l for l in CALIBRATED.splitlines()
                                                    if not l.startswith("coefficients:")), ("coefficients",)),
        *field_cases("table", {"device": {"name": "phone", "cpu": "test"}, "unit": "ms", "calibration": CAL,
                               "ops": {OP: GOOD_TIMING}, "n_ops": 1},
                     [(("ops", OP, k), [MISSING, *POSITIVE_MS]) for k in ("median", "p10", "p90", "n")]
                     + [(("calibration", "offset_ms"), [MISSING, None, "x", math.inf]),
                        (("calibration", "scale"), [0, None, math.nan]),
                        (("n_ops",), [None, "one", -1, 2]),
                        (("device",), [None, "phone", [1]])]),
        Bad("model-feature.yaml", _swap(CALIBRATED, '"se_elements", "ops"]', '"se_elements", "vibes"]'),
            ("features",)),
    ]


def measurement_cases() -> list[Bad]:
    """End-to-end timings for `nas.latency calibrate --measurements`."""
    m = MEASUREMENTS
    first = "  - {network: MobileNetV3-Large 1.0, spec: search_spaces/reference/mobilenetv3_large.yaml, ms: 51.0,"
    ms51 = "mobilenetv3_large.yaml, ms: 51.0"
    lines = m.splitlines()
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith(first)) + 2]
    return _broken_files("measurements") + [
        Bad("measurements-ms-negative.yaml", _swap(m, ms51, "mobilenetv3_large.yaml, ms: -51.0"),
            ("measurements[0].ms",)),
        Bad("measurements-ms-text.yaml", _swap(m, ms51, "mobilenetv3_large.yaml, ms: slow"),
            ("measurements[0].ms",)),
        Bad("measurements-ms-nan.yaml", _swap(m, ms51, "mobilenetv3_large.yaml, ms: .nan"),
            ("measurements[0].ms",)),
        Bad("measurements-unit.yaml", _swap(m, "unit: ms", "unit: s"), ("unit",)),
        Bad("measurements-spec-missing.yaml", _swap(m, "reference/mobilenetv3_large.yaml", "reference/nope.yaml"),
            ("measurements[0].spec",)),
        Bad("measurements-no-spec.yaml", _swap(m, first, "  - {network: MobileNetV3-Large 1.0, ms: 51.0,"),
            ("measurements[0]", "spec")),
        Bad("measurements-not-list.yaml", m.split("measurements:")[0] + "measurements: 7\n", ("measurements",)),
        Bad("measurements-too-few.yaml", "\n".join(head) + "\n",
            ("need",)),
        Bad("measurements-bad-spec.yaml", _swap(m, "reference/mobilenetv3_large.yaml",
                                                "../../tests/data/tiny_space.yaml"), ("measurements[0].spec",)),
        Bad("measurements.csv", "spec,ms\nsearch_spaces/reference/mobilenetv3_large.yaml,fast\n", ("ms",)),
        Bad("measurements-columns.csv", "network,latency\nV3,51\n", ("spec",)),
        Bad("measurements-empty.csv", "", ("empty",)),
    ] + field_cases("measurements", yaml.safe_load(m), [
        (("measurements", 0, "ms"), [MISSING, *POSITIVE_MS]),
        (("measurements", 0, "spec"), [MISSING, None, 3, "", "nope.yaml", "search_spaces"]),
        (("measurements", 0), [None, "x", 3]),
        (("unit",), ["s", None]),
        (("device",), ["phone", [1]]),
    ])


def measurements_pointing_at(spec_file: str) -> str:
    """The published measurements with the first row's spec replaced by `spec_file`."""
    return _swap(MEASUREMENTS, "search_spaces/reference/mobilenetv3_large.yaml", spec_file)


def timings_cases() -> list[Bad]:
    """time_ops.py output for `nas.latency import --timings`."""
    good = {"unit": "ms", "device": {"name": "phone"},
            "entries": [{"key": OP, **GOOD_TIMING}]}

    def dump(d) -> str:
        return json.dumps(d)

    generated = field_cases("timings", good, [(("entries", 0, k), [MISSING, *POSITIVE_MS])
                                              for k in ("median", "p10", "p90", "n")]
                            + [(("entries", 0, "key"), [MISSING, None, 3, "", "stem-in:7x8x3-out:16"]),
                               (("entries",), [None, "x", {}]),
                               (("unit",), ["s", "us", None])],
                            dump=json.dumps, suffix=".json")
    return generated + [
        Bad("timings-empty.json", "", ("empty",)),
        Bad("timings-truncated.json", dump(good)[:40], ("JSON",)),
        Bad("timings-binary.json", b"\xff\xfe\x00garbage", ("UTF-8",)),
        Bad("timings-list.json", "[1, 2]", ("entries",)),
        Bad("timings-no-entries.json", dump({**good, "entries": []}), ("entries",)),
        Bad("timings-unit.json", dump({**good, "unit": "s"}), ("unit",)),
        Bad("timings-median.json", dump({**good, "entries": [{"key": OP, **GOOD_TIMING, "median": -2}]}),
            ("entries[0].median",)),
        Bad("timings-no-key.json", dump({**good, "entries": [GOOD_TIMING]}), ("entries[0]",)),
        Bad("timings-bad-key.json", dump({**good, "entries": [{"key": "conv-whatever", **GOOD_TIMING}]}),
            ("entries[0].key",)),
        Bad("timings-network-ops.json", dump({**good, "entries": [
            {"key": OP, **GOOD_TIMING}, {"key": "net-x", "kind": "network", "ops": ["missing-op"], **GOOD_TIMING}]}),
            ("entries",)),
    ]
