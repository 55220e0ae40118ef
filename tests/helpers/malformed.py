"""A corpus of malformed inputs: broken variants of every file kind the commands read.

Each case is (label, content, words the one-line error's message must contain, words it must not).
Content is text or bytes. The variants start from a valid file and break one thing (or, in the
"several" cases, two: the first in the file is the one to name), so the error must point at that
thing; the fuzz suite (test_malformed_inputs.py) feeds each to every command that reads the kind.
Files get neutral names (case017.yaml): the label says what is broken, but a file name holding the
field's name would let a message that blames another field pass. Numbers are written as YAML reads
them as numbers (1.0e+12, not 1e12, which YAML 1.1 reads as text), and no two cases of a kind parse
to the same data (test_malformed_inputs.py checks all three).
"""
from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import dataclass, replace
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
    label: str           # what is broken, for test ids (may name the field; the file name must not)
    content: str | bytes
    needles: tuple = ()  # besides the file, what the error's message must say (the field at fault)
    absent: tuple = ()   # what it must not say (with several faults: a later field)
    kind: str = ""       # spec, space, config, table, measurements, timings
    name: str = ""       # the file's name: neutral (case017.yaml), so only the message can hold a needle

    def write(self, folder: Path) -> Path:
        path = folder / (self.name or self.label)
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
    """("blocks", 1, "k") -> "blocks[1].k", ("ops", "stem-in:...", "p10") -> "ops[stem-in:...].p10",
    as the error messages name fields."""
    out = ""
    for part in path:
        if isinstance(part, int) or not str(part).isidentifier():
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
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


def _swaps(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        text = _swap(text, old, new)
    return text


def _named(kind: str, cases: list[Bad]) -> list[Bad]:
    """The cases of one kind, each given its kind and a neutral file name (case000.yaml, ...)."""
    return [replace(b, kind=kind, name=f"case{i:03d}{Path(b.label).suffix}") for i, b in enumerate(cases)]


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


# Several faults in one file: the error names the first in the file's order (a user fixes the file
# top to bottom); after the structure (a mapping, its keys), values are checked as they come.
def _spec_several() -> list[Bad]:
    s = SPEC
    return [
        Bad("spec-several-resolution-then-stride.yaml", _swaps(s, ("resolution: 224", "resolution: 0"),
            ("{k: 5, exp: 96, out: 40, se: true, act: hswish, s: 2}", "{k: 5, exp: 96, out: 40, se: true, act: hswish, s: 3}")),
            ("resolution",), ("blocks",)),
        Bad("spec-several-kernel-then-dropout.yaml", _swaps(s, ("{k: 3, exp: 72", "{k: 4, exp: 72"),
                                                            ("dropout: 0.2", "dropout: 1.5")),
            ("blocks[1].k",), ("dropout",)),
        Bad("spec-several-in-one-row.yaml", _swaps(s, ("exp: 72, out: 24, se: false, act: relu, s: 2",
                                                       "exp: 0, out: 24, se: false, act: relu, s: 3")),
            ("blocks[1].exp",), ("blocks[1].s",)),
        Bad("spec-several-name-then-head.yaml", _swaps(s, ('name: "mobilenetv3_small"', "name: 7"),
                                                       ("head: {conv: 576", "head: {conv: -1")),
            ("name",), ("head",)),
    ]


def oversized_spec(width: int, cap: int = 8192, resolution: int | None = None) -> str:
    """The Small spec with every block's channels times `width` (at most `cap`): each block within
    its bounds, the whole network beyond the caps on its totals (nas.core.check.MAX_PARAMS, MAX_MACS)."""
    d = yaml.safe_load(SPEC)
    for row in d["blocks"]:
        row["exp"], row["out"] = min(cap, row["exp"] * width), min(cap, row["out"] * width)
    if resolution:
        d["resolution"] = resolution
    return yaml.safe_dump(d, sort_keys=False)


def _spec_cases() -> list[Bad]:
    s = SPEC
    return _broken_files("spec") + [
        # 1.05e9 parameters (and 394e9 MACs: the parameters are named first), 128 blocks' worth of bounds
        Bad("spec-totals-params.yaml", oversized_spec(10**6), ("parameters", "--max-params"), ("--max-macs",)),
        Bad("spec-totals-macs.yaml", oversized_spec(6, resolution=2048), ("MACs", "--max-macs"), ("--max-params",)),
        Bad("spec-deeply-nested.yaml", _swap(s, 'name: "mobilenetv3_small"', "name: " + "[" * 5000 + "]" * 5000),
            ("nesting",)),
        Bad("spec-unknown-key.yaml", _swap(s, "resolution:", "resolutoin:"), ("resolutoin",)),
        Bad("spec-no-blocks.yaml", s.split("blocks:")[0] + "head: {conv: 576, act: hswish}\n", ("blocks",)),
        Bad("spec-blocks-scalar.yaml", s.split("blocks:")[0] + "blocks: 7\nhead: {conv: 576, act: hswish}\n",
            ("blocks",)),
        Bad("spec-blocks-empty.yaml", s.split("blocks:")[0] + "blocks: []\nhead: {conv: 576, act: hswish}\n",
            ("blocks",)),
        Bad("spec-kernel-float.yaml", _swap(s, "{k: 3, exp: 72", "{k: 3.5, exp: 72"), ("blocks[1].k",)),
        Bad("spec-block-null.yaml", _swap(s, "  - {k: 3, exp: 72, out: 24, se: false, act: relu, s: 2}",
                                          "  - null"), ("blocks[1]",)),
        Bad("spec-resolution-huge.yaml", _swap(s, "resolution: 224", "resolution: 1000000000"), ("resolution",)),
        Bad("spec-resolution-nan.yaml", _swap(s, "resolution: 224", "resolution: .nan"), ("resolution",)),
        Bad("spec-resolution-text.yaml", _swap(s, "resolution: 224", "resolution: 224px"), ("resolution",)),
        Bad("spec-classes-huge.yaml", _swap(s, "num_classes: 1000", "num_classes: 1000000000000"), ("num_classes",)),
        Bad("spec-dropout.yaml", _swap(s, "dropout: 0.2", "dropout: 1.5"), ("head.dropout",)),
        Bad("spec-no-stem.yaml", _swap(s, "stem: {out: 16, k: 3, s: 2, act: hswish}\n", ""), ("stem",)),
        Bad("spec-stem-scalar.yaml", _swap(s, "stem: {out: 16, k: 3, s: 2, act: hswish}", "stem: 16"), ("stem",)),
        Bad("spec-name-control.yaml", _swap(s, 'name: "mobilenetv3_small"', 'name: "mobile\\tnet"'), ("name",)),
        Bad("spec-name-number.yaml", _swap(s, 'name: "mobilenetv3_small"', 'name: 7'), ("name",)),
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


def _space_several() -> list[Bad]:
    s = SPACE
    return [
        Bad("space-several-resolution-then-stage.yaml", _swaps(s, ("resolution: 32", "resolution: big"),
                                                               ("{out: 16, layers: 1, s: 2,", "{out: 16, layers: 1, s: 5,")),
            ("resolution",), ("stages",)),
        Bad("space-several-choices-then-stage.yaml", _swaps(s, ("k: [3, 5]", "k: [3, 4]"),
                                                            ("{out: 16, layers: 1,", "{out: sixteen, layers: 1,")),
            ("choices.k",), ("stages",)),
    ]


def _space_cases() -> list[Bad]:
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


def _config_several() -> list[Bad]:
    c = CONFIG
    return [  # the checks' own order (budget before reward_w, seed before space) differs from the file's
        Bad("config-several-reward_w-then-budget.yaml", _swaps(c, ("reward_w: -0.15", "reward_w: 0.5"),
                                                              ("budget: default", "budget: huge")),
            ("reward_w",), ("budget",)),
        Bad("config-several-space-then-seed.yaml", _swaps(c, ("space: mobilenetv3_small", "space: ''"),
                                                          ("seed: 0", "seed: -1")),
            ("space",), ("seed",)),
        Bad("config-several-target-then-seed.yaml", _swaps(c, ("target_ms: 15.8", "target_ms: 0"),
                                                           ("seed: 0", "seed: zero")),
            ("target_ms",), ("seed",)),
        Bad("config-several-reward-then-algorithm.yaml", _swaps(c, ("reward: mnasnet", "reward: linear"),
                                                               ("algorithm: controller", "algorithm: genetic")),
            ("reward",), ("algorithm",)),
    ]


def _config_cases() -> list[Bad]:
    c = CONFIG
    return _broken_files("config") + [
        Bad("config-unknown-key.yaml", _swap(c, "target_ms: 15.8", "target_msx: 15.8"), ("target_msx",)),
        Bad("config-target-zero.yaml", _swap(c, "target_ms: 15.8", "target_ms: 0"), ("target_ms",)),
        Bad("config-target-negative.yaml", _swap(c, "target_ms: 15.8", "target_ms: -3"), ("target_ms",)),
        Bad("config-target-text.yaml", _swap(c, "target_ms: 15.8", "target_ms: fast"), ("target_ms",)),
        Bad("config-target-nan.yaml", _swap(c, "target_ms: 15.8", "target_ms: .nan"), ("target_ms",)),
        Bad("config-target-inf.yaml", _swap(c, "target_ms: 15.8", "target_ms: .inf"), ("target_ms",)),
        Bad("config-target-huge.yaml", _swap(c, "target_ms: 15.8", "target_ms: 1.0e+300"), ("target_ms",)),
        Bad("config-space.yaml", _swap(c, "space: mobilenetv3_small", "space: mobilenetv9"), ("mobilenetv9",)),
        Bad("config-device.yaml", _swap(c, "device: pixel1", "device: pixel99"), ("pixel99",)),
        Bad("config-device-list.yaml", _swap(c, "device: pixel1", "device: [pixel1]"), ("device",)),
        Bad("config-dataset.yaml", c + "dataset: mnist-9000\n", ("dataset",)),
        Bad("config-data-missing.yaml", c + "data: /no/such/folder\n", ("/no/such/folder",)),
    ] + field_cases("config", yaml.safe_load(c), [((key,), values) for key, values in CONFIG_VALUES.items()])


# Every key a run config takes (nas.pipeline.run_config.CONFIG_KEYS) with values it must refuse; a value
# checked only once the run starts (an address to connect to) would not fail fast, so none is here.
CONFIG_VALUES = {
    "target_ms": [MISSING, None, True, [15.8], 1e12, [15.8, 15.8], [15.8, 0], [15.8, "fast"], list(range(1, 10))],
    "space": [None, 3, "", ["mobilenetv3_small"]],
    "device": [None, 3, ""],
    "proxy": [3, "", "oracle"],
    "budget": [None, 3, "huge"],
    "seed": [None, 1.5, True, "zero", -1],
    "algorithm": [None, 3, "genetic"],
    "reward": [[], 3, "linear"],  # null is valid: the searcher's own reward
    "reward_w": [0.5, -3, "x", True, math.nan],
    "samples": [0, -1, 1.5, "x", True, 10**7],
    "dataset": [None, 3, ""],
    "data": [3, ""],
    "address": [3, "", ["localhost"]],
    "cpus": [0, -2, 2.5, "x", True, 100_000],
    "trial_retries": [None, -1, 101, 1.5, "x", True],
    "baselines": ["width_scaled", 3, ["uniform"], ["width_scaled", "width_scaled"], [None]],
    "deploy": ["tflite", 1, ["onnx"], ["int8", "int8"], [None]],
    "supernet": [3, "", "/no/such/supernet"],
}


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


def _table_several() -> list[Bad]:
    return [
        Bad("table-several-unit-then-median.yaml",
            _table_text({OP: {**GOOD_TIMING, "median": -1}}, unit="s", calibration=CAL), ("unit",), ("median",)),
        Bad("table-several-calibration-then-median.yaml",
            _table_text({OP: {**GOOD_TIMING, "median": -1}}, calibration={"scale": -2, "offset_ms": 0}),
            ("calibration.scale",), ("median",)),
        Bad("table-several-median-then-count.yaml",
            _table_text({OP: {**GOOD_TIMING, "median": "x"}}, n_ops=7, calibration=CAL), ("median",), ("n_ops",)),
    ]


def _table_cases() -> list[Bad]:
    """Device files: op lookup tables and calibrated models (given as --device PATH)."""
    ok = _table_text({OP: GOOD_TIMING}, calibration=CAL)
    return _broken_files("table") + [
        Bad("table-truncated.yaml", ok[: ok.index("n_ops")], ("n_ops", "truncated")),
        Bad("table-cut-mid-line.yaml", ok[: ok.index('"p90"') + 3], ("YAML syntax error",)),
        Bad("table-count.yaml", _table_text({OP: GOOD_TIMING}, n_ops=5, calibration=CAL), ("n_ops",)),
        Bad("table-unit.yaml", _table_text({OP: GOOD_TIMING}, unit="s", calibration=CAL), ("unit",)),
        Bad("table-unit-us.yaml", _table_text({OP: GOOD_TIMING}, unit="us", calibration=CAL), ("unit",)),
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


def _measurement_several() -> list[Bad]:
    m = MEASUREMENTS
    return [
        Bad("measurements-several-unit-then-ms.yaml", _swaps(m, ("unit: ms", "unit: s"), (
            "mobilenetv3_large.yaml, ms: 51.0", "mobilenetv3_large.yaml, ms: -51.0")), ("unit",), ("measurements[0]",)),
    ]


def _measurement_cases() -> list[Bad]:
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
        Bad("measurements-spec-missing.yaml", _swap(m, "reference/mobilenetv3_large.yaml", "reference/nope.yaml"),
            ("measurements[0].spec",)),
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


def _timings_several() -> list[Bad]:
    good = {"unit": "s", "device": {"name": "phone"}, "entries": [{"key": OP, **GOOD_TIMING, "median": -1}]}
    return [Bad("timings-several-unit-then-median.json", json.dumps(good), ("unit",), ("median",))]


def _timings_cases() -> list[Bad]:
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
        Bad("timings-deeply-nested.json", "[" * 100_000 + "]" * 100_000, ("nested too deeply",)),
        Bad("timings-deeply-nested-device.json",
            dump({**good, "device": "@"}).replace('"@"', "[" * 5000 + "]" * 5000), ("nested too deeply",)),
        Bad("timings-empty.json", "", ("empty",)),
        Bad("timings-truncated.json", dump(good)[:40], ("JSON",)),
        Bad("timings-binary.json", b"\xff\xfe\x00garbage", ("UTF-8",)),
        Bad("timings-list.json", "[1, 2]", ("entries",)),
        Bad("timings-no-entries.json", dump({**good, "entries": []}), ("entries",)),
        Bad("timings-median.json", dump({**good, "entries": [{"key": OP, **GOOD_TIMING, "median": -2}]}),
            ("entries[0].median",)),
        Bad("timings-bad-key.json", dump({**good, "entries": [{"key": "conv-whatever", **GOOD_TIMING}]}),
            ("entries[0].key",)),
        Bad("timings-network-ops.json", dump({**good, "entries": [
            {"key": OP, **GOOD_TIMING}, {"key": "net-x", "kind": "network", "ops": ["missing-op"], **GOOD_TIMING}]}),
            ("entries",)),
    ]


KINDS = {"spec": lambda: _spec_cases() + _spec_several(), "space": lambda: _space_cases() + _space_several(),
         "config": lambda: _config_cases() + _config_several(), "table": lambda: _table_cases() + _table_several(),
         "measurements": lambda: _measurement_cases() + _measurement_several(),
         "timings": lambda: _timings_cases() + _timings_several()}


@functools.cache
def _cases(kind: str) -> tuple[Bad, ...]:
    return tuple(_named(kind, KINDS[kind]()))


def cases(kind: str) -> list[Bad]:
    """Every malformed file of one kind (a key of KINDS)."""
    return list(_cases(kind))


def all_cases() -> list[Bad]:
    return [b for kind in KINDS for b in _cases(kind)]


def by_label(label: str) -> Bad:
    (bad,) = [b for b in all_cases() if b.label == label]
    return bad


@functools.cache
def parsed(bad: Bad):
    """What the command's parser makes of the case: its data, or None where it does not parse."""
    if isinstance(bad.content, bytes) or not bad.content.strip():
        return None
    try:
        if bad.label.endswith(".json"):
            return json.loads(bad.content)
        if bad.label.endswith(".csv"):
            return bad.content
        return yaml.load(bad.content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, json.JSONDecodeError, RecursionError):  # nested too deeply: compared as bytes
        return None


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A flow list whose aliases expand to width**levels strings ("billion laughs") in a few hundred bytes."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def bomb_cases() -> list[Bad]:
    """YAML alias bombs and values that contain themselves, in fields whose error quotes the value:
    they must fail without expanding. Kept out of the in-process corpus: a loader that expanded one
    would take the test process's memory (test_alias_bombs_fail_within_a_memory_cap runs them in a
    subprocess capped at 1 GB)."""
    bomb, loop = _bomb(), "&me [*me]"
    cases = {
        "spec": [("spec-bomb-name.yaml", _swap(SPEC, 'name: "mobilenetv3_small"', f"name: {bomb}")),
                 ("spec-bomb-kernel.yaml", _swap(SPEC, "{k: 3, exp: 72", "{k: " + bomb + ", exp: 72")),
                 ("spec-loop-name.yaml", _swap(SPEC, 'name: "mobilenetv3_small"', f"name: {loop}"))],
        "space": [("space-bomb-name.yaml", _swap(SPACE, "name: tiny", f"name: {bomb}"))],
        "config": [("config-bomb-seed.yaml", _swap(CONFIG, "seed: 0", f"seed: {bomb}")),
                   ("config-loop-seed.yaml", _swap(CONFIG, "seed: 0", f"seed: {loop}"))],
        "table": [("table-bomb-unit.yaml", _table_text({OP: GOOD_TIMING}, unit=bomb, calibration=CAL))],
        "measurements": [("measurements-bomb-unit.yaml", _swap(MEASUREMENTS, "unit: ms", f"unit: {bomb}"))],
    }
    return [replace(b, name=f"bomb{i:02d}.yaml") for i, b in enumerate(
        Bad(label, text, ("itself",) if "loop" in label else ("aliases",), kind=kind)
        for kind, rows in cases.items() for label, text in rows)]
