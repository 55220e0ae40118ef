"""Shared command-line plumbing: one-line errors, exit status 2, JSON output, --quiet / --verbose."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import sys
from typing import Any, Callable, Sequence

from nas.runtime.errors import UserError, VerificationError, flag
from nas.runtime.jsonl import jsonable
from nas.runtime.log import NORMAL, add_verbosity_flags, setup_logging
from nas.runtime.settings import Origins, file_origins, read_config_file

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not usage + error) and exit status 2.
    Every command (and subcommand) takes --quiet / --verbose; parsing them sets up logging.

    With `config_file=True` the (sub)command also takes `--config FILE`: a YAML mapping whose keys
    are its flags' settings (`batch_size: 256` for `--batch-size 256`). Settings are defaults <- the
    file <- flags; a file's value passes the flag's own type and choices (one check, wherever the
    value enters), and an error about it names the file and key."""

    _subcommand = False  # a subcommand's parser: the top-level parser sets up logging

    def __init__(self, *args, config_file: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if "--quiet" not in self._option_string_actions:
            add_verbosity_flags(self, default=argparse.SUPPRESS if self._subcommand else NORMAL)
        self._config_file = config_file
        if config_file:
            self.add_argument("--config", metavar="FILE", help="settings from a YAML file (keys: this command's "
                                                                "flags, as batch_size); flags override it")

    def add_subparsers(self, **kwargs):
        parser_class = kwargs.get("parser_class", type(self))
        if issubclass(parser_class, ArgumentParser) and not parser_class._subcommand:
            # the subcommand's flags default to "not given", so they don't undo `prog --quiet sub`
            kwargs["parser_class"] = type("Sub" + parser_class.__name__, (parser_class,), {"_subcommand": True})
        return super().add_subparsers(**kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not self._subcommand:
            namespace.verbosity = getattr(namespace, "verbosity", NORMAL)
            setup_logging(namespace.verbosity)
            if getattr(namespace, "config", None) and any(getattr(p, "_config_file", False)
                                                          for p in _chosen_parsers(self, namespace)):
                _apply_config_file(self, args, namespace)
        return namespace, extras

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


NOT_SETTINGS = ("help", "config", "verbosity")  # flags a config file cannot set
_origins: Origins = {}  # where the running command's settings came from (a config file's keys)


def _chosen_parsers(parser: argparse.ArgumentParser, namespace) -> list[argparse.ArgumentParser]:
    """The parser and the subcommand parsers `namespace` went through."""
    chain = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(getattr(namespace, action.dest, None) or "")
            if sub is not None:
                chain += _chosen_parsers(sub, namespace)
    return chain


def _given_on_command_line(parser: argparse.ArgumentParser, args, namespace) -> set[str]:
    """The settings the command line gave: parsed again with every default hidden (the same
    subcommands parse it again, so only theirs need hiding)."""
    saved = [(a, a.default) for p in _chosen_parsers(parser, namespace) for a in p._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        given = argparse.ArgumentParser.parse_known_args(parser, args, None)[0]
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given))


def _setting_value(action: argparse.Action, value: Any) -> Any:
    """A config file's value for `action`'s flag, through the flag's own type and choices."""
    if action.nargs == 0:  # --resume, --json: a switch
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return action.const if value else action.default
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
    items = value if many and isinstance(value, list) else [value]
    if any(isinstance(v, (list, dict)) for v in items) or (many and not items and action.nargs == "+"):
        raise ValueError(f"must be {'a list of values' if many else 'one value'}, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or v is None:
            raise ValueError(f"must be a value for {action.option_strings[0]}, got {v!r}")
        converted = action.type(str(v)) if action.type else str(v)
        if action.choices is not None and converted not in action.choices:
            raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, got {v!r}")
        out.append(converted)
    return out if many else out[0]


def _apply_config_file(parser: argparse.ArgumentParser, args, namespace) -> None:
    """defaults <- the --config file <- flags, into `namespace`; the file's keys are remembered as
    where those settings came from (run_main names the file and key in an error about one)."""
    global _origins
    path = namespace.config
    settings = {a.dest: a for p in _chosen_parsers(parser, namespace) for a in p._actions
                if a.option_strings and a.dest not in NOT_SETTINGS and a.help != argparse.SUPPRESS}
    values = read_config_file(path, settings)
    given = _given_on_command_line(parser, args, namespace)
    for key, value in values.items():
        if key in given:
            continue  # the flag overrides the file
        try:
            setattr(namespace, key, _setting_value(settings[key], value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as err:
            raise UserError(str(err), source=str(path), field=key) from None
        _origins = {**_origins, **file_origins(str(path), [key])}


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (rejects 0, negatives, NaN, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _integer(text: str, ok: Callable[[int], bool], must: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be an integer {must}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, lambda v: v > 0, "> 0")


def non_negative_int(text: str) -> int:
    return _integer(text, lambda v: v >= 0, ">= 0")


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: an integer in lo..hi (every count a command takes has a bound)."""
    return lambda text: _integer(text, lambda v: lo <= v <= hi, f"in {lo}..{hi}")


THREADS = int_in(1, 1024)    # torch and runtime threads
WORKERS = int_in(1, 1024)    # worker processes
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds both take it; one bound for every command


def seed_int(text: str) -> int:
    """argparse type of every --seed: an integer in 0..2**32-1."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}")
    return value


MAX_SPEC_LIMIT = 10**18  # above any network the per-block bounds allow: a flag can lift a cap entirely


def spec_limit(text: str) -> int:
    """argparse type of --max-params / --max-macs: a count written 2000000000 or 2e9, in 1..1e18."""
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value == int(value) and 1 <= value <= MAX_SPEC_LIMIT):
        raise argparse.ArgumentTypeError(f"must be a whole number in 1..1e18, got {text!r}")
    return int(value)


def add_spec_limit_flags(parser: argparse.ArgumentParser) -> None:
    """--max-params / --max-macs on a command that loads a spec file: its caps on the network's totals
    (nas.core.check's defaults), for specs larger than any the project ships. The command passes
    them to nas.core.spec_file.spec_limits."""
    g = parser.add_argument_group("size caps of a spec file")
    g.add_argument("--max-params", type=spec_limit, metavar="N",
                   help="refuse a spec with more parameters than N (default 1e9)")
    g.add_argument("--max-macs", type=spec_limit, metavar="N", help="refuse a spec with more MACs than N (default 1e11)")


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Print the human summary, or (with --json) one JSON object as the last line of stdout.

    The JSON is strict (a NaN or inf is written as null): `jq` and other parsers reject NaN."""
    if as_json:
        print(json.dumps(jsonable(result), sort_keys=True, allow_nan=False))
    else:
        print(human(result))


EXIT_FAULT = 1  # ONNX Runtime and torch disagree (VerificationError)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
_resume_hint: str | None = None


def set_resume_hint(command: str | None) -> None:
    """The command that continues this run, printed if it is interrupted (Ctrl-C) from now on."""
    global _resume_hint
    _resume_hint = command


def resume_command(prog: str, argv: Sequence[str], add: Sequence[str] = (), drop: Sequence[str] = ()) -> str:
    """`prog argv...` with flags `add`ed (if missing) and `drop`ped: what reruns a command to resume it."""
    args = [a for a in argv if a not in drop] + [a for a in add if a not in argv]
    return shlex.join([*prog.split(), *args])


def resumable(work: Callable[[], dict[str, Any]], again: str, checkpoint: os.PathLike) -> dict[str, Any]:
    """work(), a training that saves `checkpoint` as it goes: Ctrl-C names `again`, the command that
    continues it, once the checkpoint exists; a result that stopped early (--stop-after) carries it."""
    try:
        result = work()
    except KeyboardInterrupt:
        set_resume_hint(again if os.path.exists(checkpoint) else None)
        raise
    if not result["finished"] and not result["failed"]:
        result["resume_command"] = again
    return result


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill` stopping the job): handled like Ctrl-C, exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _startup_interrupt(signum, frame):
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"\n{what}; nothing was saved", file=sys.stderr)
    sys.exit(128 + signum)


def exit_quietly_on_ctrl_c() -> None:
    """Call first in a command's `__main__`: while it still imports torch (a second or two), Ctrl-C
    or SIGTERM ends it with exit status 130 / 143 and one line, not a traceback. `run_main` then
    hands Ctrl-C back to Python's KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _startup_interrupt)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _startup_interrupt)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's main: a user error is one stderr line and exit status 2; Ctrl-C says how to resume."""
    global _origins
    set_resume_hint(None)
    _origins = {}
    setup_logging(NORMAL)  # the parser sets --quiet / --verbose; until then (and without them) info
    if signal.getsignal(signal.SIGINT) is _startup_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, _startup_interrupt):
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = main(argv)
    except UserError as err:
        _work_is_over()
        print(f"error: {on_command_line(err)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except VerificationError as err:  # an exporter or runtime fault, not the input: one line, exit 1
        _work_is_over()
        hint = f"; continue with: {_resume_hint}" if _resume_hint else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        sys.exit(EXIT_FAULT)
    except KeyboardInterrupt as stop:
        _work_is_over()
        what = "terminated" if isinstance(stop, Terminated) else "interrupted"
        hint = f"; continue with: {_resume_hint}" if _resume_hint else "; nothing was saved"
        print(f"\n{what}{hint}", file=sys.stderr)
        sys.exit(EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED)
    _work_is_over()
    sys.exit(code or 0)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait until the block is done, then arrive as usual: a save and the resume
    hint that names it happen together, never one without the other."""
    arrived: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are the main thread's to take
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in arrived[:1]:
            handler = previous[s]
            if callable(handler):
                handler(s, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(s)


def on_command_line(err: UserError) -> UserError:
    """A library error names a setting's key (`target_ms`); on the command line it is the flag
    (`--target-ms`), or the config file's key where the value came from one (`--config`)."""
    if err.setting is None:
        return err
    if err.setting in _origins:
        return err.located(*_origins[err.setting])
    return UserError(err.message, source=err.source, field=err.field, setting=flag(err.setting))


def _work_is_over() -> None:
    """Ctrl-C is ignored from here on: it would only turn a finished command's exit into a traceback or -2."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread
        pass
