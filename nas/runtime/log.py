"""What a run tells the person: stdlib logging on the `nas` logger, one stderr handler.

Modules log with `log = logging.getLogger(__name__)`; a command's frame (`nas.runtime.cli.run_main`)
calls `setup_logging` before the work starts. stdout stays for a command's own output (the human
summary, the --json line), so everything here goes to stderr.
"""
from __future__ import annotations

import contextlib
import logging
import sys

QUIET, NORMAL, VERBOSE, EVERYTHING = -1, 0, 1, 2
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}

_verbosity = NORMAL
_root_level: int | None = None  # the root logger's level before -vv raised it


class _ShortFormatter(logging.Formatter):
    """`[nas] message` for info and debug, `warning: message` / `error: message` above."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()  # no traceback: that is what --verbose is for
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return f"[nas] {message}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is *now* (pytest's capsys swaps it), and above a running tqdm
    bar instead of through it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D401 - StreamHandler attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass

    def emit(self, record: logging.LogRecord) -> None:
        tqdm_module = sys.modules.get("tqdm")
        bars = getattr(getattr(tqdm_module, "tqdm", None), "_instances", None)
        if not bars:
            return super().emit(record)
        try:
            tqdm_module.tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def setup_logging(verbosity: int = NORMAL) -> logging.Logger:
    """Install the one stderr handler (again: moves it and sets levels, adds nothing).
    verbosity: -1 (--quiet) warnings only, 0 info, 1 (--verbose) debug with times and logger names,
    2 (-vv) the same plus other libraries' info: the handler moves from `nas` to the root logger.
    Below -vv other libraries are left alone: without a handler of their own only their warnings
    reach stderr (Python's last-resort handler), and Ray is started at ERROR (nas.runtime.session)."""
    global _verbosity, _root_level
    _verbosity = max(QUIET, min(int(verbosity), EVERYTHING))
    nas, root = logging.getLogger("nas"), logging.getLogger()
    handler = next((h for lg in (nas, root) for h in lg.handlers if isinstance(h, _StderrHandler)), None)
    handler = handler or _StderrHandler()
    on, off = (root, nas) if _verbosity >= EVERYTHING else (nas, root)
    off.removeHandler(handler)
    on.addHandler(handler)  # a no-op if it is there already
    if _verbosity >= VERBOSE:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                               datefmt="%H:%M:%S"))
    else:
        handler.setFormatter(_ShortFormatter())
    nas.setLevel(_LEVELS[min(_verbosity, VERBOSE)])
    if _verbosity >= EVERYTHING:
        _root_level = root.level if _root_level is None else _root_level
        root.setLevel(logging.INFO)
    elif _root_level is not None:  # back from -vv (in one process: tests)
        root.setLevel(_root_level)
        _root_level = None
    # Propagation stays on so pytest's caplog (a root handler) sees records; below -vv the root
    # logger has no handler of its own in a command, so nothing is printed twice.
    return nas


def progress_enabled() -> bool:
    """Whether tqdm bars should show (`tqdm(..., disable=not progress_enabled())`): not with --quiet."""
    return _verbosity > QUIET


def add_verbosity_flags(parser, default=NORMAL) -> None:
    """-q/--quiet and -v/--verbose on an argparse parser (dest `verbosity`: -1, 0, or the count of -v)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET, default=default,
                       help="only warnings and errors on stderr; no progress bars")
    group.add_argument("-v", "--verbose", dest="verbosity", action="count", default=default,
                       help="also debug messages, with times and logger names (-vv: other libraries' info too)")


@contextlib.contextmanager
def root_handlers_kept():
    """The root logger's handlers as they were: some libraries call `logging.basicConfig` on import
    (ONNX Runtime's quantizer) or log with `logging.warning` (litert-torch), which gives a root
    logger without handlers one of its own, and every line of ours would be printed twice."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        yield
    finally:
        for h in root.handlers[:]:
            if h not in before:
                root.removeHandler(h)
