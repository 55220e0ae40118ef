"""NetAdapt on a space's own choices, for accuracy signals that only know the space (the ImageNet proxies).

Width surgery would leave the space, where `ofa-imagenet` and `accel-imagenet` cannot score a network.
Here a knob is one decision of the space (a layer's expansion or kernel, a stage's depth or SE, the
input resolution) and a proposal moves it to another of its options. Each iteration asks, per knob,
for the option nearest the current one that cuts the required latency (delta x the seed's latency,
or just what the target still needs), falling back to each knob's largest cut near the floor;
scores every proposal with the proxy in one batch, and keeps the best by the selection rule:
`ratio` (MobileNetV3's: accuracy change per ms cut) or `accuracy` (NetAdapt's: the most accurate);
on the last step, where every proposal reaches the target, the most accurate wins under either rule
(a larger cut than the target needs buys nothing: the space's options are coarse).
Queries cost microseconds, so a run is recomputed rather than checkpointed: it is deterministic.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.space import SearchSpace
from nas.core.spec import ArchSpec
from nas.runtime.errors import UserError
from nas.runtime.jsonl import JsonlWriter

RULES = ("ratio", "accuracy")


@dataclass
class Step:
    tokens: list[int]
    spec: ArchSpec
    latency_ms: float
    accuracy: float
    knob: str = ""
    value: Any = None


def _predict(device, specs: list[ArchSpec]) -> np.ndarray:
    return np.asarray(device.predict_many(specs), dtype=float).reshape(len(specs), 3)[:, 0]


def _proposals(space: SearchSpace, step: Step, device, required_ms: float) -> tuple[list[tuple], bool]:
    """(decision index, option, tokens, spec, ms) per knob; and whether the floor fallback was used."""
    found, largest = [], []
    for i, d in enumerate(space.decisions):
        options = [t for t in range(len(d.choices)) if t != step.tokens[i]]
        if not options:
            continue
        cands = []
        for t in options:
            tokens = list(step.tokens)
            tokens[i] = t
            cands.append((i, t, tokens, space.decode(tokens)))
        ms = _predict(device, [c[3] for c in cands])
        cuts = [(c, float(m)) for c, m in zip(cands, ms) if m < step.latency_ms - 1e-9]
        if not cuts:
            continue  # e.g. an ignored slot beyond the stage's depth: no latency to gain
        enough = [(c, m) for c, m in cuts if step.latency_ms - m >= required_ms - 1e-12]
        if enough:  # the smallest change that cuts enough (NetAdapt's widest width)
            c, m = max(enough, key=lambda cm: cm[1])
            found.append((*c, m))
        else:
            c, m = min(cuts, key=lambda cm: cm[1])
            largest.append((*c, m))
    return (found, False) if found else (largest, True)


def adapt_on_choices(spec: ArchSpec, space: SearchSpace, device, proxy, target_ms: float, delta: float = 0.025,
                     rule: str = "ratio", max_iterations: int = 200, log_path: Path | None = None) -> dict[str, Any]:
    """NetAdapt from `spec` (a network of `space`) down to `target_ms` on its choices; returns the run's
    result (spec, iterations, accuracy, latency_ms, history, queries)."""
    if rule not in RULES:
        raise UserError(f"must be one of {', '.join(RULES)}, got {rule!r}", setting="rule")
    started = time.perf_counter()
    tokens = space.encode(spec)  # refuses a network outside the space, naming the field
    seed_ms = float(_predict(device, [spec])[0])
    step = Step(tokens, spec, seed_ms, proxy.evaluate(spec)["accuracy"])
    history = [step]
    queries = 1
    while step.latency_ms > target_ms and len(history) <= max_iterations:
        required = min(delta * seed_ms, step.latency_ms - target_ms)
        proposals, fallback = _proposals(space, step, device, required)
        if not proposals:
            break  # at the floor: nothing cuts latency any more
        accs = [r["accuracy"] for r in proxy.evaluate_many([p[3] for p in proposals])] \
            if hasattr(proxy, "evaluate_many") else [proxy.evaluate(p[3])["accuracy"] for p in proposals]
        queries += len(proposals)

        last = required < delta * seed_ms and not fallback  # every proposal reaches the target

        def score(k: int) -> float:
            cut = step.latency_ms - proposals[k][4]
            if rule == "accuracy" or last:  # the last step: a larger cut than needed buys nothing
                return accs[k]
            return (accs[k] - step.accuracy) / max(cut, 1e-9)

        k = max(range(len(proposals)), key=lambda j: (score(j), -proposals[j][4]))
        i, t, new_tokens, new_spec, ms = proposals[k]
        d = space.decisions[i]
        step = Step(new_tokens, new_spec, ms, accs[k], d.name, d.choices[t])
        history.append(step)
    final = history[-1]
    records = [{"type": "iteration", "iteration": n, "latency_ms": round(h.latency_ms, 6),
                "accuracy": h.accuracy, "knob": h.knob, "to": h.value, "arch": h.spec.to_string()}
               for n, h in enumerate(history)]
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)  # recomputed whole: deterministic and cheap
        with JsonlWriter(log_path) as w:
            for r in records:
                w.write(r)
    met = final.latency_ms <= target_ms
    message = (f"{len(history) - 1} iteration(s) on the space's choices ({rule} rule), {queries} accuracy queries"
               + ("" if met else f"; stopped at {final.latency_ms:.3f} ms, above the target (the space's floor)"))
    return {"spec": final.spec, "iterations": len(history) - 1, "accuracy": final.accuracy,
            "latency_ms": final.latency_ms, "history": records, "queries": queries, "met": met,
            "message": message, "seconds": round(time.perf_counter() - started, 3)}
