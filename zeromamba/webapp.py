"""``zeromamba app``: a web page to try a model without writing code (Gradio; ``pip install "zeromamba[app]"``).

Drop an image or draw one; the page shows the top class, with the low-confidence flag and its
reason as large as the class when the answer should not be trusted, the classes with the score that
ranks them, the predicted attribute values and one heat map per deciding attribute. A new class can
be defined on the page by ticking its attribute values (or by uploading a class file: a CSV, or JSON
``{class: {attribute: value}}``): it joins the candidates as an unseen class and is recognised like
any other. Everything runs locally: the shipped ``shapes-zsl`` model or any model folder, no network.

The page logic is plain functions on a :class:`Predictor` (:func:`classify_for_page`,
:func:`add_class`, :func:`add_classes_from_file`); :func:`build_app` wires them into Gradio, with
the limits of :mod:`zeromamba.webapp_inputs` (uploads only, no URL fetched, bounded classes per
visitor that expire).

Several visitors are served at once: a :class:`~zeromamba.serving.PredictorPool` of ``workers``
predictor copies answers classify requests in parallel, each within a time limit, while Gradio's
queue holds at most ``queue_size`` waiting requests (more are refused at once, "queue is full"); the
routes that would skip the queue are closed, and the pool itself refuses requests beyond its
workers and that many waiting.
Uploads reach zeromamba's own code as files (Gradio does not decode them), so a file that is not
an image, a truncated one or a decompression bomb gets zeromamba's :class:`~zeromamba.errors.ImageError`
text on the page, and nothing in the server log.
"""

from __future__ import annotations

import inspect
import os
import re
import uuid
from typing import Any

import numpy as np
import torch
from PIL import Image

from .attribution import EXPLAIN_METHODS, default_method
from .classes import load_class_attributes, require_unique_names
from .errors import AttributeMatrixError, ConfigError, ImageError, ZeroMambaError
from .explain import pretty_name
from .images import load_image, to_rgb
from .predictor import Predictor
from .serving import PredictorPool
from .webapp_inputs import (
    DEFAULT_SESSION_TTL,
    NOT_A_PROXY,
    PAGE_MAX_CLASS_BYTES,
    PAGE_MAX_CLASSES,
    check_class_file,
    check_page_classes,
    is_remote,
    refuse_fetching,
    stored_upload_path,
)

__all__ = [
    "APP_MAX_PIXELS",
    "DEFAULT_QUEUE_SIZE",
    "add_class",
    "add_classes_from_csv",
    "add_classes_from_file",
    "build_app",
    "classify_for_page",
    "page_image",
]

#: the largest image (in pixels) the page decodes: 40 megapixels, ~120 MB as RGB
APP_MAX_PIXELS = 40_000_000
#: requests waiting for a worker, at most (beyond: refused at once)
DEFAULT_QUEUE_SIZE = 100

#: classes defined on the page: name -> float32 attribute vector (a new dict on every change: Gradio's state)
CustomClasses = dict[str, np.ndarray]


def page_image(value: Any, max_pixels: int | None = APP_MAX_PIXELS) -> Image.Image | None:
    """The RGB image of an upload (the uploaded file's path, or a PIL image) or a sketch (Gradio's
    ``{"composite": ...}``, a PIL image or the drawing's file); ``None`` for nothing or an empty sketch.

    Raises:
        ImageError: a file that is not an image, truncated or corrupt, or over ``max_pixels``; a URL
            (the page never fetches one).
    """
    sketch = isinstance(value, dict)
    if sketch:
        value = value.get("composite")
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        if is_remote(os.fspath(value)):
            raise ImageError(NOT_A_PROXY)
        try:
            img = load_image(value, max_pixels=max_pixels)
        except ImageError as e:  # named as the visitor knows it, not by the server's upload folder
            raise ImageError(str(e).replace(os.fspath(value), os.path.basename(value))) from None
        # a sketchpad nobody drew on: transparent, so all white once composited
        return None if sketch and img.getextrema() == ((255, 255),) * 3 else img
    if isinstance(value, np.ndarray):
        value = Image.fromarray(value)
    if not isinstance(value, Image.Image):
        raise ImageError(f"cannot read the page's image ({type(value).__name__})")
    if value.mode in ("RGBA", "LA") and value.getchannel("A").getextrema()[1] == 0:
        return None  # a sketchpad nobody drew on
    return to_rgb(value)


def candidates(predictor: Predictor, custom: CustomClasses) -> tuple[torch.Tensor, list[str], list[bool]]:
    """The predictor's own classes plus the page's classes (unseen); an own class with the same
    attribute profile as a page class gives way to it."""
    if predictor.class_attributes is None or predictor.class_names is None:
        raise AttributeMatrixError("the page needs a model with its own classes (a class-attribute matrix)")
    own = predictor.class_attributes
    seen = predictor.seen.tolist() if predictor.seen is not None else [False] * own.shape[0]
    rows, names, flags = list(own), list(predictor.class_names), list(seen)
    if custom:
        extra, _ = load_class_attributes(np.asarray(list(custom.values()), dtype=np.float32), predictor.num_attributes)
        keep = [bool((extra @ row).max() < 0.999) for row in own]  # rows are L2-normalised
        rows = [r for r, k in zip(rows, keep) if k] + list(extra)
        names = [n for n, k in zip(names, keep) if k] + list(custom)
        flags = [f for f, k in zip(flags, keep) if k] + [False] * len(custom)
        require_unique_names(names, "the model's and the page's classes")
    return torch.stack(rows), names, flags


def classify_for_page(
    predictor: Predictor, image: Any, custom: CustomClasses, method: str | None = None, top_k: int = 5
) -> dict[str, Any]:
    """Everything the page shows for one image.

    Returns:
        ``{"headline", "low_confidence", "confidence_note", "classes": rows [rank, class, ranking score,
        probability, role], "attributes": rows [attribute, value], "heatmaps": PIL figure, "explanation"}``;
        the headline (Markdown) names the class and, for a low-confidence answer, says so and why
        under it, in a heading of the same size.

    Raises:
        ImageError: no image, or one that cannot be read.
    """
    img = page_image(image)
    if img is None:
        raise ImageError("no image yet: upload one or draw one, then press Classify")
    matrix, names, seen = candidates(predictor, custom)
    result = predictor.classify(img, attributes=matrix, class_names=names, seen=seen, top_k=top_k)
    ranking = result.calibrated if result.calibrated is not None else result.probabilities
    own = set(predictor.class_names or [])
    rows = []
    for rank, (name, score, prob, is_seen) in enumerate(
        zip(result.names, ranking, result.probabilities, result.seen or [False] * len(result.names)), 1
    ):
        role = "seen in training" if is_seen else ("unseen in training" if name in own else "defined on this page")
        rows.append([rank, name, round(float(score), 4), round(float(prob), 4), role])
    values = predictor.predict_attributes(img)
    attributes = sorted(zip(values.attribute_names, values.values), key=lambda t: -t[1])
    explanation = predictor.explain(
        img, result.label, top_k=3, attributes=matrix, class_names=names, seen=seen, method=method
    )
    how = "calibrated probability (probability - gamma x seen)" if result.calibrated is not None else "probability"
    headline = f"## {_markdown_text(pretty_name(result.label))}\n"
    if result.low_confidence:  # as large as the class: the answer should not be trusted
        headline += f"## \\[LOW CONFIDENCE\\] {_markdown_text(result.confidence_note)}\n"
    headline += f"ranked by {how}; heat maps: `{explanation.method}`"
    return {
        "headline": headline,
        "low_confidence": result.low_confidence,
        "confidence_note": result.confidence_note,
        "classes": rows,
        "attributes": [[pretty_name(n), round(float(v), 4)] for n, v in attributes],
        "heatmaps": explanation.render(panel_size=180),
        "explanation": explanation,
    }


def _new_classes(predictor: Predictor, custom: CustomClasses, added: dict[str, np.ndarray]) -> CustomClasses:
    """``custom`` plus ``added``, refusing a name the page or the model has already, and the page's limits."""
    own = set(predictor.class_names or [])
    taken = [n for n in added if n in custom or n in own]
    if taken:
        where = "the model's classes" if taken[0] in own else "the classes defined on this page"
        raise AttributeMatrixError(
            f"{taken[0]!r} is already one of {where}"
            + (f" (and {len(taken) - 1} more names)" if len(taken) > 1 else "")
            + "; give the new class another name"
        )
    out = {**custom, **added}
    check_page_classes(out)
    return out


def add_class(predictor: Predictor, custom: CustomClasses, name: str, chosen: list[str]) -> CustomClasses:
    """``custom`` plus a class ``name`` that has the ``chosen`` attributes (value 1, others 0).

    Raises:
        AttributeMatrixError: no name, no attribute, an unknown attribute name, a name the page or
            the model has already, or more classes than the page keeps (:mod:`zeromamba.webapp_inputs`).
    """
    name = (name or "").strip()
    names = list(predictor.attribute_names or [])
    if not name:
        raise AttributeMatrixError("give the new class a name")
    if not chosen:
        raise AttributeMatrixError("tick at least one attribute value for the new class")
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise AttributeMatrixError(f"unknown attributes {unknown}; choose among the model's attribute names")
    vector = np.array([1.0 if a in chosen else 0.0 for a in names], dtype=np.float32)
    return _new_classes(predictor, custom, {name: vector})


def add_classes_from_file(predictor: Predictor, custom: CustomClasses, path: str | os.PathLike) -> CustomClasses:
    """``custom`` plus every class of a class file: a CSV (``class,<attribute>,...``; see
    :func:`~zeromamba.classes.load_class_attributes`) or JSON (``{class: {attribute: value}}``).

    Raises:
        AttributeMatrixError: a file the page does not take (over
            :data:`~zeromamba.webapp_inputs.PAGE_MAX_CLASS_FILE_BYTES`), that cannot be read as classes,
            or whose classes clash with names there are already or exceed the page's limits; the
            message names the file by its own name.
    """
    path = os.fspath(path)
    try:
        check_class_file(path)
        matrix, names = load_class_attributes(
            path, predictor.num_attributes, attribute_names=predictor.attribute_names, normalize=False
        )
    except AttributeMatrixError as e:  # named as the visitor knows it, not by the server's upload folder
        raise AttributeMatrixError(str(e).replace(path, os.path.basename(path))) from None
    names = names or [f"class {i + 1}" for i in range(matrix.shape[0])]
    return _new_classes(predictor, custom, {n: row.numpy().copy() for n, row in zip(names, matrix)})


#: the former name of :func:`add_classes_from_file`
add_classes_from_csv = add_classes_from_file


def _markdown_text(text: str) -> str:
    """``text`` shown as itself in Markdown: its punctuation escaped, line breaks as spaces."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", " ".join(text.split()))


def _describe(custom: CustomClasses, attribute_names: list[str]) -> list[list[str]]:
    rows = []
    for name, vector in custom.items():
        on = [pretty_name(a) for a, v in zip(attribute_names, vector) if v > 0]
        rows.append([name, ", ".join(on) if len(on) <= 12 else f"{len(on)} attributes"])
    return rows


def _page_error(gr: Any, error: ZeroMambaError) -> Exception:
    # the visitor's mistake, told on the page: no traceback in the server's log
    return gr.Error(str(error), print_exception=False)


def _hidden_event(listener: Any) -> dict[str, Any]:
    """Options that keep a page-only event out of the API (Gradio 6 ``api_visibility``, 5 ``show_api``)."""
    return (
        {"api_visibility": "private"}
        if "api_visibility" in inspect.signature(listener).parameters
        else {"show_api": False}
    )


def build_app(
    predictor: Predictor,
    title: str = "zeromamba",
    method: str | None = None,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    session_ttl: float = DEFAULT_SESSION_TTL,
) -> Any:
    """The Gradio page for ``predictor`` (``gr.Blocks``, its queue set up; call ``.launch()``, best
    with ``state_session_capacity=``:data:`~zeromamba.webapp_inputs.DEFAULT_MAX_SESSIONS` as
    ``zeromamba app`` does, to bound how many visitors' classes are kept).

    Args:
        workers: classify requests served in parallel, each by its own copy of the predictor
            (``None``: one per core, at most :data:`~zeromamba.serving.MAX_WORKERS`).
        timeout: seconds a classify request may take, waiting included
            (``None``: :data:`~zeromamba.serving.DEFAULT_REQUEST_TIMEOUT`).
        queue_size: requests that may wait for a worker; more are refused at once.
        session_ttl: seconds a visitor's classes are kept after their last change.
    """
    import gradio as gr

    if isinstance(session_ttl, bool) or not isinstance(session_ttl, (int, float)) or not session_ttl > 0:
        raise ConfigError(f"session_ttl must be a positive number of seconds, got {session_ttl!r}")
    pool = PredictorPool(predictor, workers, timeout=timeout, max_waiting=queue_size)
    attribute_names = list(predictor.attribute_names or [])
    chosen_default = method or default_method(predictor.preprocess["input_size"])
    limits = (
        f"at most {PAGE_MAX_CLASSES} classes ({PAGE_MAX_CLASS_BYTES / 1e6:g} MB) per visitor, kept "
        f"{session_ttl / 60:g} minutes after the last change or until the tab is closed"
    )
    # uploads and answers pile up in Gradio's cache: files older than an hour go, every hour
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {title}\nZero-shot classification with ZeroMamba: {predictor.num_classes} classes described by "
            f"{len(attribute_names)} attributes. Upload or draw an image, then press **Classify**."
        )
        custom = gr.State({}, time_to_live=session_ttl)
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Upload"):
                        upload = gr.Image(
                            type="filepath", sources=["upload", "clipboard"], label="image", elem_id="upload"
                        )
                    with gr.Tab("Draw"):
                        sketch = gr.Sketchpad(type="pil", label="draw", elem_id="sketch", canvas_size=(320, 320))
                how = gr.Radio(list(EXPLAIN_METHODS), value=chosen_default, label="heat-map method")
                run = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column(scale=2):
                headline = gr.Markdown(elem_id="headline")
                table = gr.Dataframe(
                    headers=["rank", "class", "ranking score", "probability", "class is"],
                    label="top classes",
                    elem_id="classes",
                    interactive=False,
                )
                heatmaps = gr.Image(type="pil", format="png", label="heat maps", show_label=False, elem_id="heatmaps")
                attrs = gr.Dataframe(
                    headers=["attribute", "predicted value"], label="predicted attributes", elem_id="attributes"
                )
        with gr.Accordion("Define a new class", open=True):
            with gr.Row():
                new_name = gr.Textbox(label="class name", elem_id="new-name")
                ticks = gr.CheckboxGroup(attribute_names, label="its attribute values", elem_id="new-attributes")
            with gr.Row():
                add = gr.Button("Add class", elem_id="add-class")
                csv = gr.File(
                    label='or upload a class file: CSV (class,<attribute>,...) or JSON {"class": {"attribute": 1}}',
                    file_types=[".csv", ".tsv", ".txt", ".json"],
                    elem_id="csv",
                )
            defined = gr.Dataframe(headers=["class", "attributes"], label="classes defined here", elem_id="defined")
            with gr.Row():
                gr.Markdown(f"Classes defined here: {limits}.", elem_id="class-limits")
                remove = gr.Button("Remove the page's classes", elem_id="remove-classes", size="sm")

        # the page's code reads only files the server stored itself, and Gradio fetches no URL for it
        def page_error(message: str) -> Exception:
            return gr.Error(message, print_exception=False)

        def stored(error: type[ZeroMambaError]) -> Any:
            def read(payload: Any) -> str | None:
                try:
                    return stored_upload_path(payload, upload.GRADIO_CACHE, error)
                except ZeroMambaError as e:
                    raise page_error(str(e)) from None

            return read

        def stored_sketch(payload: Any) -> dict[str, str | None] | None:
            composite = payload.get("composite") if isinstance(payload, dict) else getattr(payload, "composite", None)
            return None if payload is None else {"composite": stored(ImageError)(composite)}

        # these components' preprocessing only (a subclass would make Gradio write a .pyi stub beside
        # this module): Gradio does not decode the files, the page's own readers do
        upload.preprocess, csv.preprocess, sketch.preprocess = (
            stored(ImageError),
            stored(AttributeMatrixError),
            stored_sketch,
        )
        for component in (upload, csv, sketch):
            refuse_fetching(component, page_error)

        def on_classify(up: Any, drawn: Any, chosen_method: str, state: CustomClasses):
            image = up if up is not None else drawn
            try:
                page = pool.run(classify_for_page, image, state, chosen_method)
            except ZeroMambaError as e:
                raise _page_error(gr, e) from None
            figure = page["heatmaps"]
            # Gradio stores an output image under a hash of its bytes, rewriting the file in place: two
            # visitors getting the same figure at once would share a file one of them sees half-written.
            # A request id in the PNG's text makes every answer's file its own.
            figure.info["zeromamba-request"] = uuid.uuid4().hex
            return page["headline"], page["classes"], figure, page["attributes"]

        def clear_results():  # a new image or a new request: the last answer goes, also if this one fails
            return "", None, None, None

        def on_add(name: str, chosen: list[str], state: CustomClasses):
            try:
                state = add_class(predictor, state, name, chosen)
            except ZeroMambaError as e:
                raise _page_error(gr, e) from None
            return state, _describe(state, attribute_names)

        def on_file(path: str | None, state: CustomClasses):
            if path is None:
                return state, _describe(state, attribute_names)
            try:
                state = add_classes_from_file(predictor, state, path)
            except ZeroMambaError as e:
                raise _page_error(gr, e) from None
            return state, _describe(state, attribute_names)

        def on_remove():
            return {}, []

        def on_unload(request: Any) -> None:  # the tab closed: its classes go now, not in an hour
            holder, session = getattr(app, "state_holder", None), getattr(request, "session_hash", None)
            if holder is not None and session and session in holder:
                holder.delete_state(session)

        on_unload.__annotations__["request"] = gr.Request  # a real class: Gradio passes the request by its type

        results = [headline, table, heatmaps, attrs]
        hidden = {"queue": False, "show_progress": "hidden", **_hidden_event(run.click)}
        upload.change(clear_results, None, results, **hidden)
        run.click(clear_results, None, results, **hidden).then(
            on_classify, [upload, sketch, how, custom], results, api_name="classify"
        )
        add.click(on_add, [new_name, ticks, custom], [custom, defined], api_name="add_class")
        csv.upload(on_file, [csv, custom], [custom, defined], api_name="add_classes_from_file")
        remove.click(on_remove, None, [custom, defined], api_name="remove_classes")
        app.unload(on_unload)
    # every event through the queue and its limits: the REST routes that would skip it are closed
    app.queue(default_concurrency_limit=pool.workers, max_size=queue_size, api_open=False)
    app.zeromamba_pool = pool  # the app's workers, for whoever serves it (cli/app.py reports them)
    return app
