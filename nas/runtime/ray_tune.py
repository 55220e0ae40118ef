"""The one place that runs Ray Tune: every experiment gets the same resources, retries, checkpoint
policy and quiet output, whichever stage (search, proxies, NetAdapt) runs it."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import ray.tune

log = logging.getLogger(__name__)

# A Ray trial that raises, or whose worker process dies (OOM killer, lost node), runs again this many
# times; then it is recorded as failed (reward 0, its error as the reason) and the run goes on.
# Here, torch-free, so configs and parsers can name it without loading torch.
TRIAL_RETRIES = 1


def run_tune(trainable, *, name: str, storage: str | os.PathLike, resources: Mapping[str, float],
             param_space: Mapping[str, Any] | None = None, search_alg=None, num_samples: int = 1,
             scheduler=None, metric: str | None = None, mode: str | None = None,
             max_concurrent: int | None = None, max_failures: int = TRIAL_RETRIES,
             callbacks: Sequence[Any] = (), trial_dirname_creator=None,
             keep_checkpoints: int | None = 1) -> "ray.tune.ResultGrid":
    """Run `trainable` (each trial with `resources`, e.g. {"cpu": 1, "gpu": 0}) as the experiment
    `storage`/`name` and return its ResultGrid.

    Call it inside `nas.runtime.session.ray_session`, which starts Ray with the environment Tune
    must see (no usage reports, no progress tables, Ctrl-C as a KeyboardInterrupt). Actors are
    reused (a worker loads the data set once), a trial that raises or loses its worker runs again
    `max_failures` times, and each trial keeps its `keep_checkpoints` latest checkpoints (None: all).
    """
    import ray  # deferred: Ray takes 1-5 s to load
    from ray import tune  # deferred: Ray takes 1-5 s to load

    if not ray.is_initialized():  # Tune would start a Ray of its own, without ray_session's settings
        raise RuntimeError("run_tune needs a running Ray: call it inside nas.runtime.session.ray_session")
    path = Path(storage).resolve()
    log.debug("Ray Tune experiment %s: %d sample(s), %s per trial", path / name, num_samples, dict(resources))
    tuner = tune.Tuner(
        tune.with_resources(trainable, dict(resources)),
        param_space=dict(param_space) if param_space is not None else None,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples, scheduler=scheduler,
                                    metric=metric, mode=mode, max_concurrent_trials=max_concurrent,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname_creator),
        run_config=tune.RunConfig(name=name, storage_path=str(path), verbose=0, callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=keep_checkpoints)),
    )
    return tuner.fit()


def trial_error(result) -> str | None:
    """"trial error: <the exception>" for a trial that failed, None for one that did not; at most
    300 characters, for a record's `reason`. `result` is a ray.tune Result (after fit) or a Trial
    (while Tune runs: a searcher told of an error, a callback)."""
    error = getattr(result, "error", None)
    if error is None and hasattr(result, "error_file"):
        error = _trial_exception(result)
    if not error:
        return None
    return f"trial error: {_exception_line(error)}"[:300]


def _trial_exception(trial) -> str | None:
    """A running Trial's last exception, as the text trace Tune writes on the driver before it tells
    the searcher and callbacks. Tune's pickled copy of the exception is not read: a pickle can run
    code, and the text names the exception as well."""
    try:
        return Path(trial.error_file).read_text(errors="replace")
    except (OSError, TypeError):
        return None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure|Warning)(:|$)")


def _exception_line(error: BaseException | str) -> str:
    """The line that names the exception. Ray wraps a trial's exception (RayTaskError) in text that
    starts with where it ran, and keeps the original as its cause; a trace ends with it."""
    if isinstance(error, str):
        lines = [ln.strip() for ln in error.splitlines() if ln.strip() and not ln.startswith("Failure #")]
        # The last "SomeError: message" line, not a multi-line message's last line.
        named = [ln for ln in lines if _EXCEPTION_LINE.match(ln) and not ln.startswith("ray.exceptions.")]
        return (named or lines or ["unknown"])[-1]
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and cause is not error:
        error = cause
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
