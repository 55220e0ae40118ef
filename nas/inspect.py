"""Print an architecture's parameters, multiply-adds and (with --device) predicted latency.

    python -m nas.inspect SPEC.yaml|NAME [--device host|pixel1|NAME] [--json]
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

from nas.runtime.cli import ArgumentParser, add_spec_limit_flags, emit, run_main
from nas.core.counts import count_macs, count_params  # from the spec alone: no torch
from nas.core.spec_file import load_spec_capped


def inspect_spec(spec, device: str | None = None) -> dict:
    result = {
        "name": spec.name,
        "arch_hash": spec.content_hash(),
        "resolution": spec.resolution,
        "blocks": len(spec.blocks),
        "params": count_params(spec),
        "macs": count_macs(spec),
        "arch": spec.to_string(),
    }
    if device:
        from nas.latency.devices import get_device  # deferred: loads torch

        pred = get_device(device).predict(spec)
        result.update(device=device, latency_ms=round(pred.ms, 4),
                      latency_p10_ms=round(pred.p10, 4), latency_p90_ms=round(pred.p90, 4))
    return result


def _human(r: dict) -> str:
    lines = [f"{r['name']} ({r['arch_hash']}): {r['params']:,} params, {r['macs'] / 1e6:.1f}M MACs, "
             f"{r['blocks']} blocks at {r['resolution']}x{r['resolution']}"]
    if "latency_ms" in r:
        lines.append(f"  predicted latency on {r['device']}: {r['latency_ms']:.2f} ms "
                     f"(p10 {r['latency_p10_ms']:.2f}, p90 {r['latency_p90_ms']:.2f})")
    lines.append(f"  {r['arch']}")
    return "\n".join(lines)


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m nas.inspect", description=__doc__.strip().splitlines()[0])
    p.add_argument("spec", help="architecture spec: a YAML file or a published one by name (mobilenetv3_large)")
    p.add_argument("--device", help="latency device: host, pixel1, a table name under latency_tables/ or a path")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    add_spec_limit_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spec = load_spec_capped(args.spec, args.max_params, args.max_macs)
    emit(inspect_spec(spec, args.device), args.json, _human)
    return 0


if __name__ == "__main__":
    run_main(main)
