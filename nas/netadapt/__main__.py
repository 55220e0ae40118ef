"""python -m nas.netadapt: shrink a spec's widths to a target latency."""
if __name__ == "__main__":  # Ctrl-C while the imports below load torch: one line, no traceback
    from nas.runtime.cli import exit_quietly_on_ctrl_c

    exit_quietly_on_ctrl_c()

from nas.netadapt.run import main  # noqa: E402

if __name__ == "__main__":
    from nas.runtime.cli import run_main

    run_main(main)
