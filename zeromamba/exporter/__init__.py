"""Export a model or a predictor to ONNX, TorchScript or a ``torch.export`` ExportedProgram.

:func:`export` writes ``DIR/model.onnx`` (or ``model.torchscript.pt`` / ``model.pt2``) and
``DIR/preprocess.json`` (:mod:`.preprocess`): the whole predictor head (:mod:`.graph`), images in,
attributes and class scores out, with a dynamic batch size at one image size. The selective scan
is the ``"chunked"`` backend (:mod:`zeromamba.ops.chunked_scan`: matmuls, ``cumsum``, ``exp``), so
the graph holds standard operators only (ONNX opset :data:`DEFAULT_OPSET`) and runs anywhere an
ONNX runtime does. Every export is checked before it is put in place: the written file, loaded
back and run at two batch sizes, must match the model's own eager outputs within
:data:`TOLERANCE` (scaled by their magnitude), else :class:`~zeromamba.errors.ExportError` and
nothing is written.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError, ExportError
from ..fileio import atomic_write, write_json
from ..format import model_config
from ..models.int8 import is_int8
from ..predictor import Predictor
from ..preprocess_config import model_preprocess
from .graph import PredictorGraph, graph_copy
from .preprocess import preprocess_spec

__all__ = ["DEFAULT_OPSET", "FORMATS", "MIN_OPSET", "MODEL_FILES", "TOLERANCE", "ExportResult", "export"]

FORMATS = ("onnx", "torchscript", "exported-program")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "exported-program": "model.pt2"}
#: the ONNX opset written (ONNX Runtime 1.14 and later run it)
DEFAULT_OPSET = 18
#: the lowest opset the graph can be written in: PyTorch's exporter writes opset 18 and cannot convert
#: its operators (Pad with an ``axes`` input, ...) down
MIN_OPSET = 18
#: the largest difference from eager accepted, relative to the output's largest magnitude
TOLERANCE = 1e-4
_EXAMPLE_BATCH = 2  # dynamic batch: the example must not be 1 (torch.export would specialise on it)
_CHECK_BATCHES = (1, 3)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how closely the written file reproduces the model."""

    directory: Path
    model_file: Path
    preprocess_file: Path
    format: str
    output_names: list[str]
    input_size: tuple[int, int, int]
    opset: int | None
    max_error: dict[str, float] = field(default_factory=dict)  # per output, scaled; checked batches

    def __str__(self) -> str:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in self.max_error.items()) or "not checked"
        return (
            f"{self.model_file} ({self.format}{f', opset {self.opset}' if self.opset else ''}, input "
            f"batch x {' x '.join(map(str, self.input_size))}, outputs {', '.join(self.output_names)}); "
            f"{self.preprocess_file.name} beside it; largest scaled difference from eager: {errors}"
        )


def export(
    model_or_predictor: Predictor | nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    *,
    input_size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
) -> ExportResult:
    """Write ``model_or_predictor`` into the folder ``path`` as ``format`` plus ``preprocess.json``.

    Args:
        model_or_predictor: a :class:`~zeromamba.predictor.Predictor` (its classes, seen mask and
            ``gamma`` become the ``class_scores`` / ``calibrated_scores`` outputs) or a model of
            this package (ZeroMamba, VMamba, Vim, ZeroMamba on Vim).
        path: the output folder (created; files of the same names are replaced).
        format: ``"onnx"``, ``"torchscript"`` (``torch.jit.trace``) or ``"exported-program"``
            (``torch.export``, loaded with ``torch.export.load``).
        input_size: ``(height, width)`` of the graph's input (default: the predictor's
            preprocessing); the batch size stays dynamic.
        opset: the ONNX opset (ONNX only), :data:`MIN_OPSET` or later; the file declares exactly
            this opset, else :class:`~zeromamba.errors.ExportError`.
        verify: load the written file back and compare it with eager PyTorch at batch sizes 1
            and 3 (ONNX through ONNX Runtime, CPU execution provider).

    Raises:
        ExportError: an unknown format, a model this package does not export, a missing
            ``export`` extra (``pip install 'zeromamba[export]'``), or an exported graph that
            differs from eager by more than :data:`TOLERANCE`.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "onnx" and int(opset) < MIN_OPSET:
        raise ExportError(
            f"cannot write ONNX opset {opset}: the graph needs opset {MIN_OPSET} or later (PyTorch's exporter "
            f"cannot convert its operators to older opsets); use --opset {MIN_OPSET} (the default) or higher"
        )
    if isinstance(model_or_predictor, Predictor):
        predictor = model_or_predictor
        graph = PredictorGraph.from_predictor(predictor)
        preprocess = dict(predictor.preprocess)
        source = predictor.model
    elif isinstance(model_or_predictor, nn.Module):
        predictor = None
        graph = PredictorGraph.from_model(model_or_predictor)
        preprocess = model_preprocess(model_or_predictor)
        source = model_or_predictor
    else:
        raise ExportError(
            f"export takes a Predictor or a zeromamba model, got {type(model_or_predictor).__name__}; for a model "
            "name, load it first: zeromamba.export(zeromamba.from_pretrained(name), path)"
        )
    if is_int8(source):
        raise ExportError(
            "this model runs int8 layers, which export does not write (its graphs are float32): export the float32 "
            "model (predictor.to(dtype='float32'), or load it without dtype='int8') and quantize in the runtime that "
            "loads it if needed (e.g. onnxruntime.quantization.quantize_dynamic)"
        )
    if input_size is not None:
        height, width = (int(s) for s in input_size)
        if height < 1 or width < 1:
            raise ExportError(f"input_size must be two positive numbers (height, width), got {input_size!r}")
        preprocess["input_size"] = (3, height, width)
    size = tuple(preprocess["input_size"])
    graph.eval()
    example = torch.randn(_EXAMPLE_BATCH, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        try:
            graph(example)  # a model that cannot run at this size fails here, with its own message
        except (RuntimeError, ValueError) as e:
            raise ExportError(f"the model does not run on a {size[1]} x {size[2]} input: {e}") from e

    directory = Path(path)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    model_file = directory / MODEL_FILES[format]
    errors: dict[str, float] = {}

    def write(tmp: Path) -> None:
        _WRITERS[format](graph, example, tmp, opset)
        if verify:
            errors.update(_verify(format, tmp, source, graph, size))

    try:
        atomic_write(model_file, write)
    except BaseException:
        if created and not any(directory.iterdir()):
            directory.rmdir()  # a refused export leaves no trace, not even its folder
        raise
    spec = preprocess_spec(
        preprocess,
        graph.output_names,
        model_file=model_file.name,
        model_format=format,
        opset=opset if format == "onnx" else None,
        architecture=_architecture(source),
        class_names=predictor.class_names if predictor is not None else None,
        attribute_names=predictor.attribute_names if predictor is not None else None,
        seen=predictor.seen.tolist() if predictor is not None and predictor.seen is not None else None,
        gamma=predictor.gamma if predictor is not None else None,
    )
    preprocess_file = write_json(spec, directory / "preprocess.json")
    return ExportResult(
        directory=directory,
        model_file=model_file,
        preprocess_file=preprocess_file,
        format=format,
        output_names=graph.output_names,
        input_size=size,  # type: ignore[arg-type]
        opset=opset if format == "onnx" else None,
        max_error=errors,
    )


# --- writers ---------------------------------------------------------------------------------------


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=4096)


def _write_onnx(graph: PredictorGraph, example: torch.Tensor, tmp: Path, opset: int) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxscript ({e}); pip install 'zeromamba[export]'") from None
    with warnings.catch_warnings(), torch.no_grad(), _ExporterLog() as log:
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (example,),
            input_names=["images"],
            output_names=graph.output_names,
            opset_version=int(opset),
            dynamo=True,
            dynamic_shapes={"images": {0: _batch_dim()}},
            verbose=False,
            report=False,
        )
    if program is None:  # pragma: no cover - dynamo=True always returns the program
        raise ExportError("torch.onnx.export returned no program")
    program.save(tmp, external_data=False)
    _check_opset(tmp, int(opset), log.reason())


class _ExporterLog(logging.Handler):
    """Holds what PyTorch's ONNX exporter and onnxscript log while exporting (a failed opset
    conversion is logged with its traceback and otherwise ignored), instead of printing it: the
    export then succeeds, or fails with one :class:`~zeromamba.errors.ExportError` that says why."""

    _NAMES = ("onnxscript", "torch.onnx")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._saved: list[tuple[logging.Logger, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def reason(self) -> str:
        """The last logged exception's message (or the last message), one line."""
        for record in reversed(self.records):
            if record.exc_info and record.exc_info[1] is not None:
                return str(record.exc_info[1]).strip().splitlines()[-1][:300]
        return self.records[-1].getMessage().splitlines()[0][:300] if self.records else ""

    def __enter__(self) -> _ExporterLog:
        for name in self._NAMES:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.propagate))
            logger.addHandler(self)
            logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, propagate in self._saved:
            logger.removeHandler(self)
            logger.propagate = propagate


def _write_torchscript(graph: PredictorGraph, example: torch.Tensor, tmp: Path, opset: int) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in recent PyTorch, still supported
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(tmp))


def _write_exported_program(graph: PredictorGraph, example: torch.Tensor, tmp: Path, opset: int) -> None:
    with torch.no_grad():
        program = torch.export.export(graph, (example,), dynamic_shapes={"images": {0: _batch_dim()}})
    with open(tmp, "wb") as f:  # a file object: torch.export.save wants a .pt2 name otherwise
        torch.export.save(program, f)


_WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript, "exported-program": _write_exported_program}


def _check_opset(file: Path, opset: int, reason: str = "") -> None:
    """The written file declares the opset asked for (PyTorch's exporter keeps its own opset when it
    cannot convert the graph, and only logs why)."""
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    declared = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if declared != opset:
        why = f" ({reason})" if reason else ""
        raise ExportError(
            f"PyTorch's ONNX exporter could not convert the graph to opset {opset}{why}; nothing was written. "
            f"Use an opset it converts to, such as {DEFAULT_OPSET} (the default)"
        )


def _architecture(model: nn.Module) -> str | None:
    """The timm architecture name of ``model`` (its ``pretrained_cfg``'s, else read off its modules)."""
    name = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if name:
        return str(name)
    try:
        return model_config(model)[0]
    except (TypeError, CheckpointError):
        return None


# --- the check -------------------------------------------------------------------------------------


def _runner(format: str, file: Path) -> Any:
    """``images -> list of numpy outputs`` for the written file, loaded the way a user loads it."""
    if format == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError(
                "checking the ONNX file needs onnxruntime; pip install 'zeromamba[export]' (or pass verify=False)"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types: an opset or operator it does not know
            raise ExportError(
                f"ONNX Runtime {ort.__version__} cannot load the exported file ({str(e).splitlines()[0][:300]}); "
                f"nothing was written. Choose an opset it supports (--opset {DEFAULT_OPSET}, the default)"
            ) from None
        return lambda x: session.run(None, {"images": x.numpy()})
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(file))
    else:
        with open(file, "rb") as f:
            module = torch.export.load(f).module()

    def run(x: torch.Tensor) -> list[Any]:
        with torch.inference_mode():
            return [t.numpy() for t in module(x)]

    return run


def _verify(
    format: str, file: Path, source: nn.Module, graph: PredictorGraph, size: tuple[int, ...]
) -> dict[str, float]:
    """The written file against the model's own eager path (its usual scan backend) on random images."""
    reference = graph_copy(source)
    reference.set_scan_backend("auto")  # what the predictor runs: the fused CPU kernel where it applies
    run = _runner(format, file)
    worst: dict[str, float] = {}
    for batch in _CHECK_BATCHES:
        x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            expected = graph.heads(reference(x))
        got = run(x)
        for name, want, have in zip(graph.output_names, expected, got):
            have = torch.as_tensor(have)
            if tuple(have.shape) != tuple(want.shape):
                raise ExportError(f"the exported {name} has shape {tuple(have.shape)}, eager {tuple(want.shape)}")
            err = float((have.float() - want.float()).abs().max() / want.abs().max().clamp_min(1e-12))
            worst[name] = max(worst.get(name, 0.0), err)
    bad = {k: v for k, v in worst.items() if not v <= TOLERANCE}
    if bad:
        raise ExportError(
            f"the exported {format} graph differs from eager PyTorch beyond {TOLERANCE:g} (scaled): "
            + ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
            + "; nothing was written. Please report this with the model's config"
        )
    return worst
