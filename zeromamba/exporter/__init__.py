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

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ExportError
from ..fileio import atomic_write, write_json
from ..images import resolve_preprocess
from ..models.int8 import is_int8
from ..predictor import Predictor
from .graph import PredictorGraph, graph_copy
from .preprocess import preprocess_spec

__all__ = ["DEFAULT_OPSET", "FORMATS", "MODEL_FILES", "TOLERANCE", "ExportResult", "export"]

FORMATS = ("onnx", "torchscript", "exported-program")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "exported-program": "model.pt2"}
#: the ONNX opset written (ONNX Runtime 1.14 and later run it)
DEFAULT_OPSET = 18
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
        opset: the ONNX opset (ONNX only).
        verify: load the written file back and compare it with eager PyTorch at batch sizes 1
            and 3 (ONNX through ONNX Runtime, CPU execution provider).

    Raises:
        ExportError: an unknown format, a model this package does not export, a missing
            ``export`` extra (``pip install 'zeromamba[export]'``), or an exported graph that
            differs from eager by more than :data:`TOLERANCE`.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(model_or_predictor, Predictor):
        predictor = model_or_predictor
        graph = PredictorGraph.from_predictor(predictor)
        preprocess = dict(predictor.preprocess)
        source = predictor.model
    elif isinstance(model_or_predictor, nn.Module):
        predictor = None
        graph = PredictorGraph.from_model(model_or_predictor)
        preprocess = resolve_preprocess(getattr(model_or_predictor, "pretrained_cfg", None))
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
    directory.mkdir(parents=True, exist_ok=True)
    model_file = directory / MODEL_FILES[format]
    errors: dict[str, float] = {}

    def write(tmp: Path) -> None:
        _WRITERS[format](graph, example, tmp, opset)
        if verify:
            errors.update(_verify(format, tmp, source, graph, size))

    atomic_write(model_file, write)
    spec = preprocess_spec(
        preprocess,
        graph.output_names,
        model_file=model_file.name,
        model_format=format,
        opset=opset if format == "onnx" else None,
        architecture=(getattr(source, "pretrained_cfg", None) or {}).get("architecture"),
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
    with warnings.catch_warnings(), torch.no_grad():
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
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
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
