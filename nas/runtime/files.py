"""Reading and writing files: one-line errors for bad input, whole-or-nothing writes.

Every reader turns a missing, unreadable, too large (MAX_FILE_BYTES), non-UTF-8, empty or
unparsable file, or YAML whose aliases explode (MAX_YAML_VALUES), into a `UserError` naming the
file; every writer replaces its target atomically (temporary file + fsync + rename), so an
interrupted run never leaves a half-written file, and a path it cannot write is a `UserError`.
`save_state`/`load_state` are the same for torch weights files.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import yaml

from nas.runtime.errors import UserError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: latency tables are large
# Input files are small (the largest, a host op table of the Large space, is ~100 KB): refuse more
# than these at once, before a parser spends memory and minutes on them.
MAX_FILE_BYTES = 32 * 2**20
MAX_YAML_VALUES = 1_000_000  # after aliases are expanded: an alias bomb is a few lines


def read_text_file(path: str | os.PathLike, what: str = "a text file") -> str:
    """A file's text, or a one-line UserError: missing, a directory, unreadable, too large, not UTF-8,
    empty."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError("file not found", source=str(p)) from None
    except IsADirectoryError:
        raise UserError(f"is a directory, expected {what}", source=str(p)) from None
    except OSError as err:
        raise UserError(f"cannot read: {err.strerror or err}", source=str(p)) from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"more than {MAX_FILE_BYTES >> 20} MB: too large for {what}", source=str(p))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"not UTF-8 text (byte {err.start}): expected {what}", source=str(p)) from None
    if not text.strip():
        raise UserError("file is empty", source=str(p))
    return text


def load_yaml_file(path: str | os.PathLike) -> Any:
    """Read and parse a YAML file, turning every failure into a one-line UserError."""
    p = Path(path)
    text = read_text_file(p, "a YAML file")
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"YAML syntax error at {where}: {problem}", source=str(p)) from None
    if data is None:
        raise UserError("file is empty (nothing but comments)", source=str(p))
    _check_expanded_size(data, p)
    return data


def _check_expanded_size(data: Any, p: Path) -> None:
    """Refuse YAML whose aliases expand it beyond MAX_YAML_VALUES values, or make a value contain
    itself: each is a few lines that any walk over the data (a check, an error message quoting the
    value, a fingerprint) would take forever on. A shared value counts once per place it is used but
    is walked once, so this takes time in the file's size, not in what it expands to."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # containers being counted: the path from the top to this one
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, counted_children = stack.pop()
        if not isinstance(node, (list, dict)):
            continue
        children = list(node.values()) if isinstance(node, dict) else node
        if counted_children:
            open_.discard(id(node))
            size = 1 + sum(sizes.get(id(c), 1) for c in children)
            if size > MAX_YAML_VALUES:
                raise UserError(f"YAML aliases expand to more than {MAX_YAML_VALUES} values (an alias bomb?)",
                                source=str(p))
            sizes[id(node)] = size
        elif id(node) in open_:
            raise UserError("a YAML alias makes a value contain itself", source=str(p))
        elif id(node) not in sizes:
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children)


def load_json_file(path: str | os.PathLike) -> Any:
    """Read and parse a JSON file, turning every failure into a one-line UserError."""
    p = Path(path)
    text = read_text_file(p, "a JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"not valid JSON (truncated?) at line {err.lineno}, column {err.colno}: {err.msg}",
                        source=str(p)) from None
    except RecursionError:
        raise UserError("JSON nested too deeply to read (a data file, not a program)", source=str(p)) from None


def open_no_follow(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a symbolic link at `path`: a link planted in a run folder must not lead a
    lock, a log or a checkpoint to write over a file elsewhere. One error naming the path."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UserError("is a symbolic link; refusing to follow it (run folders hold plain files only)",
                            source=str(path)) from None
        raise


def _writable_parent(p: Path) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create its folder: {err.strerror or err}", source=str(p)) from None
    if p.is_dir():
        raise UserError("is a directory, expected a file path", source=str(p))


def fsync_dir(directory: Path) -> None:
    """Put a folder's entries (a file renamed or created in it) on disk: a power cut keeps them."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a file system without directory descriptors: nothing more can be done
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Write a file whole or not at all: `write` fills a temporary file beside `path`, which is
    fsynced (a checkpoint must be on disk before the work it covers starts) and renamed over it."""
    p = Path(path)
    _writable_parent(p)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    if tmp.is_symlink():  # left, or planted: the link goes, never what it points to
        tmp.unlink()
    try:
        with os.fdopen(open_no_follow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        fsync_dir(p.parent)  # the rename itself on disk: after a power cut the file is the new one
    except OSError as err:
        raise UserError(f"cannot write: {err.strerror or err}", source=str(p)) from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_state(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """torch.save `state` (a state_dict, or any weights-only object), whole or not at all."""
    import torch  # deferred: torch (~2 s); flag errors answer before it loads

    atomic_write(path, lambda f: torch.save(state, f))


def load_state(path: str | os.PathLike, *, source: str | None = None, field: str | None = None,
               setting: str | None = None, finite: bool = False) -> dict:
    """The state_dict in a weights file (a {"model": state_dict} checkpoint gives its model's), on the CPU.

    A missing, unreadable or corrupt file, or one that holds no state_dict, is a UserError naming the
    file; `source` and `field` say where the path came from (a config file and key), or `setting`
    (the settings key that named it, a flag on the command line).
    With `finite` (weights a user gives), a NaN or inf in any tensor is one too, naming the tensor:
    such weights would load, train or export, and only fail far later and less clearly.
    """
    import torch  # deferred: as above

    p = str(path)

    def fail(message: str) -> UserError:
        if source:
            return UserError(f"{p}: {message}", source=source, field=field)
        return UserError(message, source=p, setting=setting)

    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except OSError as err:
        raise fail(unreadable(err, "a weights file")) from None
    except Exception as err:  # torch raises many types for a corrupt or truncated file
        raise fail(f"cannot load weights: {err.__class__.__name__}") from None
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not (isinstance(state, Mapping) and state
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise fail(f"not a state_dict (a {type(state).__name__}, expected names mapped to tensors)")
    for name, tensor in state.items() if finite else ():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
            raise fail(f"{name}: tensor holds a non-finite value ({bad}); weights must be finite numbers")
    return state  # as loaded: an OrderedDict keeps the _metadata that load_state_dict reads


def unreadable(err: OSError, expected: str) -> str:
    """Why a file could not be read, in a few words: missing, a folder, or the system's reason."""
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, IsADirectoryError):
        return f"is a directory, expected {expected}"
    return f"cannot read: {err.strerror or err}"
