"""``zeromamba app``: a web page to try a model without writing code (Gradio; ``pip install "zeromamba[app]"``).

Drop an image or draw one; the page shows the top classes with the score that ranks them, the
predicted attribute values and one heat map per deciding attribute. A new class can be defined on
the page by ticking its attribute values (or by uploading a class-attribute CSV): it joins the
candidates as an unseen class and is recognised like any other. Everything runs locally: the
shipped ``shapes-zsl`` model or any model folder, no network.

The page logic is plain functions on a :class:`Predictor` (:func:`classify_for_page`,
:func:`add_class`, :func:`add_classes_from_csv`); :func:`build_app` wires them into Gradio.

Several visitors are served at once: a :class:`~zeromamba.serving.PredictorPool` of ``workers``
predictor copies answers classify requests in parallel, each within a time limit, while Gradio's
queue holds at most ``queue_size`` waiting requests (more are refused at once, "queue is full").
Uploads reach zeromamba's own code as files (Gradio does not decode them), so a file that is not
an image, a truncated one or a decompression bomb gets zeromamba's :class:`~zeromamba.errors.ImageError`
text on the page, and nothing in the server log.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import torch
from PIL import Image

from .attribution import EXPLAIN_METHODS, default_method
from .classes import load_class_attributes
from .errors import AttributeMatrixError, ImageError, ZeroMambaError
from .explain import pretty_name
from .images import load_image, to_rgb
from .predictor import Predictor
from .serving import PredictorPool

__all__ = [
    "APP_MAX_PIXELS",
    "DEFAULT_QUEUE_SIZE",
    "add_class",
    "add_classes_from_csv",
    "build_app",
    "classify_for_page",
    "page_image",
]

#: the largest image (in pixels) the page decodes: 40 megapixels, ~120 MB as RGB
APP_MAX_PIXELS = 40_000_000
#: requests waiting for a worker, at most (beyond: refused at once)
DEFAULT_QUEUE_SIZE = 100

#: custom classes on the page: name -> attribute vector (plain lists, so Gradio can keep them in its state)
CustomClasses = dict[str, list[float]]


def page_image(value: Any, max_pixels: int | None = APP_MAX_PIXELS) -> Image.Image | None:
    """The RGB image of an upload (the uploaded file's path, or a PIL image) or a sketch (Gradio's
    ``{"composite": ...}``); ``None`` for nothing or an empty sketch.

    Raises:
        ImageError: a file that is not an image, truncated or corrupt, or over ``max_pixels``.
    """
    if isinstance(value, dict):
        value = value.get("composite")
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        if str(value).startswith("data:"):
            raise ImageError("the image came as a data: URL; upload the image file instead")
        try:
            return load_image(value, max_pixels=max_pixels)
        except ImageError as e:  # named as the visitor knows it, not by the server's upload folder
            raise ImageError(str(e).replace(os.fspath(value), os.path.basename(value))) from None
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
    return torch.stack(rows), names, flags


def classify_for_page(
    predictor: Predictor, image: Any, custom: CustomClasses, method: str | None = None, top_k: int = 5
) -> dict[str, Any]:
    """Everything the page shows for one image.

    Returns:
        ``{"headline", "classes": rows [rank, class, ranking score, probability, role],
        "attributes": rows [attribute, value], "heatmaps": PIL figure, "explanation"}``.

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
    headline = f"## {pretty_name(result.label)}\nranked by {how}; heat maps: `{explanation.method}`"
    return {
        "headline": headline,
        "classes": rows,
        "attributes": [[pretty_name(n), round(float(v), 4)] for n, v in attributes],
        "heatmaps": explanation.render(panel_size=180),
        "explanation": explanation,
    }


def add_class(predictor: Predictor, custom: CustomClasses, name: str, chosen: list[str]) -> CustomClasses:
    """``custom`` plus a class ``name`` that has the ``chosen`` attributes (value 1, others 0).

    Raises:
        AttributeMatrixError: no name, no attribute, or an unknown attribute name.
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
    return {**custom, name: [1.0 if a in chosen else 0.0 for a in names]}


def add_classes_from_csv(predictor: Predictor, custom: CustomClasses, path: str | os.PathLike) -> CustomClasses:
    """``custom`` plus every row of a class-attribute CSV (``class,<attribute>,...``; see
    :func:`~zeromamba.classes.load_class_attributes`)."""
    matrix, names = load_class_attributes(
        os.fspath(path), predictor.num_attributes, attribute_names=predictor.attribute_names, normalize=False
    )
    names = names or [f"class {i + 1}" for i in range(matrix.shape[0])]
    return {**custom, **{n: row.tolist() for n, row in zip(names, matrix)}}


def _describe(custom: CustomClasses, attribute_names: list[str]) -> list[list[str]]:
    rows = []
    for name, vector in custom.items():
        on = [pretty_name(a) for a, v in zip(attribute_names, vector) if v > 0]
        rows.append([name, ", ".join(on) if len(on) <= 12 else f"{len(on)} attributes"])
    return rows


def _page_error(gr: Any, error: ZeroMambaError) -> Exception:
    # the visitor's mistake, told on the page: no traceback in the server's log
    return gr.Error(str(error), print_exception=False)


def _upload_as_file(payload: Any) -> str | None:
    """What the upload component hands the page: the uploaded file's path, not decoded (Gradio's own
    decoding answers a bad file with its generic error and a traceback in the log)."""
    if payload is None:
        return None
    return str(payload.path) if payload.path else payload.url


def build_app(
    predictor: Predictor,
    title: str = "zeromamba",
    method: str | None = None,
    *,
    workers: int | None = None,
    timeout: float | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> Any:
    """The Gradio page for ``predictor`` (``gr.Blocks``, its queue set up; call ``.launch()``).

    Args:
        workers: classify requests served in parallel, each by its own copy of the predictor
            (``None``: one per core, at most :data:`~zeromamba.serving.MAX_WORKERS`).
        timeout: seconds a classify request may take, waiting included
            (``None``: :data:`~zeromamba.serving.DEFAULT_REQUEST_TIMEOUT`).
        queue_size: requests that may wait for a worker; more are refused at once.
    """
    import gradio as gr

    pool = PredictorPool(predictor, workers, timeout=timeout)
    attribute_names = list(predictor.attribute_names or [])
    chosen_default = method or default_method(predictor.preprocess["input_size"])
    # uploads and answers pile up in Gradio's cache: files older than an hour go, every hour
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {title}\nZero-shot classification with ZeroMamba: {predictor.num_classes} classes described by "
            f"{len(attribute_names)} attributes. Upload or draw an image, then press **Classify**."
        )
        custom = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Upload"):
                        upload = gr.Image(
                            type="filepath", sources=["upload", "clipboard"], label="image", elem_id="upload"
                        )
                        # this one component's preprocessing only (a subclass would make Gradio write a
                        # .pyi stub beside this module): the page reads the file itself
                        upload.preprocess = _upload_as_file
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
                csv = gr.File(label="or upload a class-attribute CSV", file_types=[".csv"], elem_id="csv")
            defined = gr.Dataframe(headers=["class", "attributes"], label="classes defined here", elem_id="defined")

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

        def on_add(name: str, chosen: list[str], state: CustomClasses):
            try:
                state = add_class(predictor, state, name, chosen)
            except ZeroMambaError as e:
                raise _page_error(gr, e) from None
            return state, _describe(state, attribute_names)

        def on_csv(file: Any, state: CustomClasses):
            if file is None:
                return state, _describe(state, attribute_names)
            try:
                state = add_classes_from_csv(predictor, state, getattr(file, "name", file))
            except ZeroMambaError as e:
                raise _page_error(gr, e) from None
            return state, _describe(state, attribute_names)

        run.click(on_classify, [upload, sketch, how, custom], [headline, table, heatmaps, attrs], api_name="classify")
        add.click(on_add, [new_name, ticks, custom], [custom, defined], api_name="add_class")
        csv.upload(on_csv, [csv, custom], [custom, defined], api_name="add_classes_from_csv")
    app.queue(default_concurrency_limit=pool.workers, max_size=queue_size)
    app.zeromamba_pool = pool  # the app's workers, for whoever serves it (cli/app.py reports them)
    return app
