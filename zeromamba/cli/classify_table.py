"""``zeromamba classify --format parquet`` and ``--engine ray``: records into one Parquet file, on this
machine or on a Ray cluster, complete or absent and resumable (:mod:`zeromamba.partial_output`).

Imported by ``zeromamba classify`` itself, so its top level stays light: torch, Ray and pyarrow are
imported when a run needs them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ZeroMambaError
from .arg_types import positive_number, whole_number

__all__ = ["add_arguments", "classify_to_table", "wants_table"]

COUNT = whole_number(0)

ENGINES = ("local", "ray")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``classify`` for the Parquet output and the Ray engine."""
    group = p.add_argument_group(
        'Parquet output and Ray (pip install "zeromamba[ray]")',
        "--format parquet (the default with --engine ray) writes the same records as jsonl, one row per image, "
        "to --output; parts are saved beside it as they come (.NAME.partial/) and joined into NAME at the end.",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process (default); ray: copies of the model on Ray actors, on this machine or a cluster",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="join this running Ray cluster (HOST:PORT, ray://HOST:PORT or auto; default: $RAY_ADDRESS, else a new "
        "local Ray instance)",
    )
    group.add_argument(
        "--actors", type=COUNT, help="model copies working at once (default: one per CPU of the cluster, or GPU)"
    )
    group.add_argument(
        "--cpus-per-actor", type=positive_number, default=1.0, help="CPUs each actor reserves (default 1)"
    )
    group.add_argument(
        "--retries",
        type=COUNT,
        default=None,
        help="Ray engine: restarts of an actor that died, and re-runs of the batches it held (default 3)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue a run that did not finish: classify only the images its partial output lacks",
    )
    group.add_argument(
        "--save-every", type=COUNT, default=1000, metavar="N", help="save a part every N images (default 1000)"
    )


def wants_table(args: argparse.Namespace) -> bool:
    """Whether this run writes Parquet (and so runs here, not in ``cli/predict.py``'s writer)."""
    return args.format == "parquet" or args.engine == "ray" or args.resume


def _check(args: argparse.Namespace) -> None:
    if args.engine == "ray" and args.format == "table":  # the default: a Ray run writes Parquet
        args.format = "parquet"
    if args.format != "parquet":
        raise ZeroMambaError(
            f"--engine ray and --resume write Parquet, not {args.format}: use --format parquet (or leave --format out)"
        )
    if not args.output:
        raise ZeroMambaError("Parquet is a binary file: give --output FILE.parquet")
    if args.engine != "ray":
        given = [f for f, v in (("--ray-address", args.ray_address), ("--actors", args.actors)) if v is not None]
        if given or args.retries is not None:
            raise ZeroMambaError(f"{', '.join(given or ['--retries'])} go with --engine ray")
    if args.actors == 0:
        raise ZeroMambaError("--actors must be at least 1")
    if args.save_every == 0:
        raise ZeroMambaError("--save-every must be at least 1")


def _digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None  # the reader of the file reports it


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the records; a resume must ask for the same."""
    return {
        "model": args.model,
        "revision": args.revision,
        "attributes_sha256": _digest(args.attributes),
        "class_names_sha256": _digest(args.class_names),
        "top_k": args.top_k,
        "gamma": args.gamma,
        "dtype": args.dtype,
    }


def _local_records(
    args: argparse.Namespace, sources: list[str], load: Callable[..., Any], progress: Callable[..., Any]
) -> Iterator[dict[str, Any]]:
    predictor = load(args)
    with progress(len(sources), args) as bar:
        stream = predictor.classify_iter(
            sources,
            attributes=args.attributes,
            class_names=args.class_names,
            top_k=args.top_k,
            gamma=args.gamma,
            batch_size=args.batch_size,
            num_workers=args.workers,
            skip_errors=True,
        )
        for item in stream:
            yield item.to_record()
            bar.update(1)


def _ray_records(args: argparse.Namespace, sources: list[str]) -> Iterator[dict[str, Any]]:
    from ..batch_classifier import BatchClassifier
    from ..ray_engine import DEFAULT_RETRIES, RayOptions, classify_on_ray, require_ray

    require_ray(private_instance=args.ray_address is None and not os.environ.get("RAY_ADDRESS"))
    classifier = BatchClassifier(
        args.model,
        attributes=args.attributes,
        class_names=args.class_names,
        top_k=args.top_k,
        gamma=args.gamma,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        revision=args.revision,
        timeout=args.timeout,
    )
    gpu = bool(args.device) and str(args.device).startswith("cuda")
    options = RayOptions(
        address=args.ray_address,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=1.0 if gpu else 0.0,
        retries=DEFAULT_RETRIES if args.retries is None else args.retries,
        quiet=args.quiet,
    )
    yield from classify_on_ray(sources, classifier, options)


def _note(text: str) -> None:
    print(f"zeromamba: {text}", file=sys.stderr, flush=True)


def classify_to_table(
    args: argparse.Namespace,
    sources: list[str],
    *,
    choose_model: Callable[[bool], str],
    load: Callable[[argparse.Namespace], Any],
    progress: Callable[[int, argparse.Namespace], Any],
) -> int:
    """Classify ``sources`` into the Parquet file ``args.output``; the exit code. ``choose_model``,
    ``load`` and ``progress`` are ``classify``'s own: the default model, loading it, the progress bar."""
    from ..hubcheck import check_model_name
    from ..partial_output import ParquetOutput
    from . import EXIT_SKIPPED

    _check(args)
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        raise ZeroMambaError('--format parquet needs pyarrow: pip install "zeromamba[ray]"') from None
    args.model = args.model or choose_model(args.quiet)
    if not args.revision:
        check_model_name(args.model)
    output = ParquetOutput(args.output, _settings(args), resume=args.resume, save_every=args.save_every)
    todo = output.start(sources)
    if args.resume and not args.quiet:
        if output.done_before:
            _note(f"resuming {args.output}: {output.done_before} images done before, {len(todo)} to classify")
        else:
            _note(f"nothing to resume for {args.output} (no partial output); classifying all {len(todo)} images")
    start = time.monotonic()
    done = skipped = 0
    if not todo:  # a resume of a run that had done everything but join its parts
        records: Iterator[dict[str, Any]] = iter(())
    elif args.engine == "ray":
        records = _ray_records(args, todo)
    else:
        records = _local_records(args, todo, load, progress)
    try:
        for record in records:
            if "error" in record:
                skipped += 1
                print(f"zeromamba: skipped {record['image']}: {record['error']}", file=sys.stderr, flush=True)
            else:
                done += 1
            output.add(record)
    except BaseException:
        if output.stop():  # what is done stays done: --resume starts from there
            _note(
                f"stopped after {done + skipped} of {len(todo)} images; the results so far are kept in "
                f"{output.folder}: rerun with --resume to classify the rest"
            )
        raise
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    seconds = time.monotonic() - start
    rows, errors = output.finish()
    if not args.quiet:
        rate = (done + skipped) / seconds if seconds > 0 else float("nan")
        earlier = f" (and {output.done_before} from the earlier run)" if output.done_before else ""
        _note(
            f"{done + skipped} images{earlier} in {seconds:.1f} s, {rate:.2f} images/s: {done} classified, {skipped} "
            f"could not be read; wrote {rows} rows to {os.fspath(args.output)}"
        )
    return EXIT_SKIPPED if errors else 0
