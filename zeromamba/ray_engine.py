"""Classifying on a Ray cluster: the engine of ``zeromamba classify --engine ray``.

The inputs (paths and URLs) become a Ray Data dataset of one ``path`` column, cut into blocks of a
few batches; a fixed pool of actors, each a :class:`~zeromamba.batch_classifier.BatchClassifier`
with its own copy of the model, classifies them (``map_batches``); the records come back to this
process in input order (``preserve_order``), where the caller writes them.

Failures are Ray's to handle, configured here rather than written: an actor whose process dies is
restarted (``max_restarts``) and the batches it held are run again (``max_task_retries``); Ray Data
keeps the output of a retried block only once, so every input gives exactly one record. An image
that cannot be read is a record with its error, as in the local engine. Ray shows its own progress
bars.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .batch_classifier import BatchClassifier
from .errors import ConfigError, ZeroMambaError
from .record_table import as_record

__all__ = ["DEFAULT_RETRIES", "RayOptions", "classify_on_ray", "require_ray"]

#: restarts of each actor, and runs of each batch after the first, before the job gives up
DEFAULT_RETRIES = 3
# a block is at most this many batches: what one restart may have to redo
_MAX_BATCHES_PER_BLOCK = 16


@dataclass
class RayOptions:
    """How the job runs on the cluster.

    Attributes:
        address: the cluster to join (``ray.init``'s ``address``: ``HOST:PORT``, ``ray://...``,
            ``auto``); ``None``: ``$RAY_ADDRESS`` if set, else a new local Ray instance.
        actors: model copies (actors) working at once; ``None``: as many as the cluster's CPUs (or
            GPUs, with ``gpus_per_actor``) allow.
        cpus_per_actor: CPUs each actor reserves (Ray gives its PyTorch as many threads).
        gpus_per_actor: GPUs each actor reserves (``--device cuda``: 1).
        retries: restarts per actor and re-runs per batch (:data:`DEFAULT_RETRIES`).
        quiet: no progress bars and only Ray's warnings.
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    retries: int = DEFAULT_RETRIES
    quiet: bool = False


def require_ray(private_instance: bool = False) -> Any:
    """``ray`` (with Ray Data), or a :class:`ZeroMambaError` saying how to install it.

    ``private_instance``: this process will start a Ray instance of its own, which then listens on
    127.0.0.1 only (Ray's single-machine mode, chosen before Ray is first imported): nothing on
    another machine can reach it."""
    if private_instance and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ModuleNotFoundError as e:
        raise ZeroMambaError(
            f'--engine ray needs Ray Data and pyarrow ({e.name} is not installed): pip install "zeromamba[ray]"'
        ) from None
    return ray


def _pool_size(ray: Any, options: RayOptions) -> int:
    if options.actors is not None:
        return options.actors
    resources = ray.cluster_resources()
    if options.gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_actor))
    return max(1, int(resources.get("CPU", 1) // options.cpus_per_actor))


def _num_blocks(count: int, batch_size: int, actors: int) -> int:
    """Blocks of whole batches: at least four per actor where there are enough inputs (the pool stays
    busy to the end), at most :data:`_MAX_BATCHES_PER_BLOCK` batches each (what a restart redoes)."""
    batches = math.ceil(count / (4 * actors * batch_size))
    rows = batch_size * min(_MAX_BATCHES_PER_BLOCK, max(1, batches))
    return max(1, math.ceil(count / rows))


def _fault_tolerance(ray: Any, retries: int) -> dict[str, Any]:
    """The actor options that make Ray restart a dead actor and run its batches again, ``retries``
    times each. Ray Data takes them as ``map_batches``' remote arguments (deprecated since Ray 2.60,
    with no named replacement yet); where it no longer does, its own defaults (no limit) remain."""
    parameters = inspect.signature(ray.data.Dataset.map_batches).parameters.values()
    takes_remote_args = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return {"max_restarts": retries, "max_task_retries": retries} if takes_remote_args else {}


def _user_error(error: BaseException) -> ZeroMambaError | None:
    """The zeromamba error behind a failed Ray task, if that is what stopped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ZeroMambaError):
            return error
        cause = getattr(error, "cause", None)
        error = cause if isinstance(cause, BaseException) else (error.__cause__ or error.__context__)
    return None


def classify_on_ray(sources: Sequence[str], classifier: BatchClassifier, options: RayOptions) -> Iterator[dict]:
    """The records of ``sources`` (paths and URLs), in their order, classified by copies of
    ``classifier`` on Ray actors; the first is yielded once the job is running.

    Joins (or starts) the cluster and leaves it (or stops it) when the records are all read or the
    iterator is closed.

    Raises:
        ZeroMambaError: Ray is not installed, or the job failed (retries spent, or an error in the
            classifier such as :class:`~zeromamba.errors.NonFiniteOutputError`, raised as it is).
    """
    if options.actors is not None and options.actors < 1:
        raise ConfigError(f"actors must be at least 1, got {options.actors}")
    if options.retries < 0:
        raise ConfigError(f"retries must be 0 or more, got {options.retries}")
    ray = require_ray(private_instance=options.address is None and not os.environ.get("RAY_ADDRESS"))
    started = not ray.is_initialized()
    if started:
        ray.init(address=options.address, logging_level=logging.WARNING if options.quiet else logging.INFO)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the records in input order, as the local engine's
        context.enable_progress_bars = not options.quiet
        actors = _pool_size(ray, options)
        blocks = _num_blocks(len(sources), classifier.batch_size, actors)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated", category=Warning)
            dataset = ray.data.from_items([{"path": s} for s in sources], override_num_blocks=blocks).map_batches(
                BatchClassifier,
                fn_constructor_kwargs=_constructor_kwargs(classifier),
                batch_size=classifier.batch_size,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=options.cpus_per_actor,
                num_gpus=options.gpus_per_actor or None,
                # Ray's own fault tolerance: a dead actor is restarted, the batches it held run again
                **_fault_tolerance(ray, options.retries),
            )
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.to_pylist():
                    yield as_record({**row, "image": row["path"]})
        except Exception as e:  # noqa: BLE001 - Ray wraps what went wrong in a task in its own exceptions
            user = _user_error(e)
            if user is not None:
                raise user from None
            first_line = str(e).splitlines()[0] if str(e) else ""
            raise ZeroMambaError(f"the Ray job failed: {type(e).__name__}: {first_line}") from e
    finally:
        if started:
            ray.shutdown()


def _constructor_kwargs(classifier: BatchClassifier) -> dict[str, Any]:
    """What builds a copy of ``classifier`` in an actor (its file contents already read)."""
    return {
        "model": classifier.model,
        "attributes": classifier.attributes,
        "class_names": classifier.class_names,
        "top_k": classifier.top_k,
        "gamma": classifier.gamma,
        "device": classifier.device,
        "dtype": classifier.dtype,
        "batch_size": classifier.batch_size,
        "with_attribute_values": classifier.with_attribute_values,
        "column": "path",
        "revision": classifier.revision,
        "timeout": classifier.timeout,
        "num_threads": classifier.num_threads,
    }
