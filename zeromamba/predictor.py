"""The :class:`Predictor`: classify images with a ZeroMamba model against any set of classes.

A ZeroMamba model predicts an attribute vector per image; a class scores the dot product of that
vector with its row of a class-attribute matrix. The predictor wraps a model with its own classes
(names, attribute matrix, which classes were seen in training, the calibration ``gamma``) and the
image preprocessing, and handles every input kind (see :mod:`zeromamba.images`)::

    predictor = Predictor(model, class_attributes=att, class_names=names, seen=seen_idx, gamma=0.3)
    predictor.classify("bird.jpg")                        # one ClassificationResult; predictor("bird.jpg") too
    predictor.classify(["a.jpg", "b.png"], attributes={"zebra": z, "horse": h})   # a ResultList
    for r in predictor.classify_iter(paths, num_workers=4, skip_errors=True): ...  # streamed, decoded in workers
    predictor.predict_attributes("bird.jpg")
    predictor.explain("bird.jpg").save_png("why.png")
    predictor.to("cuda", torch.bfloat16); predictor.transform(pil_image)   # device/precision; the preprocessing

Class-attribute matrices (``class_attributes`` and the ``attributes`` argument of
:meth:`Predictor.classify`) may be a ``C x A`` numpy array, tensor or nested list, a dict
``class name -> vector`` or ``class name -> {attribute name: value}``, or a file: ``.npy``, CSV
or JSON (see :func:`~zeromamba.classes.load_class_attributes`). Their rows are L2-normalised, as
in the xlsa17 ``att`` matrices the published models were trained with, so only the direction of a
class's attribute vector matters, not its scale (``original_att`` in 0..100 works as well as ``att``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from .batch import DecodedItem, check_batch_size, iter_batches, run_model
from .classes import ClassAttributes, load_class_attributes, load_class_names, require_unique_names, seen_mask
from .errors import AttributeMatrixError, ConfigError, ImageError, Int8UnavailableError
from .images import DEFAULT_MAX_PIXELS, ImageInput, ImageTransform, PreparedImage
from .models.int8 import dequantize_int8, is_int8, quantize_int8
from .models.zeromamba import ZeroMamba
from .preprocess_config import model_preprocess, resolve_preprocess
from .ranking import Candidates, check_gamma, explanation_target, rank_classes
from .results import AttributePrediction, ClassificationResult, ImageFailure, ResultList
from .runtime import (
    check_device,
    inference_input_dtype,
    inference_weight_dtype,
    parse_inference_dtype,
    requested_dtype,
)
from .scoring import class_scores, require_finite

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["Predictor"]


# --- the predictor ---------------------------------------------------------------------------------


class Predictor:
    """Zero-shot image classification with a ZeroMamba model.

    Args:
        model: a :class:`~zeromamba.models.ZeroMamba` (or any timm classifier returning logits, e.g.
            a VMamba backbone; then ``classify`` ranks its logits and ``class_names`` name them).
        class_attributes: the predictor's own classes, ``C x A`` (any form
            :func:`~zeromamba.classes.load_class_attributes` reads); rows are L2-normalised.
        class_names: one name per class (default ``"class <i>"`` in results).
        seen: which classes were seen in training: a boolean mask of length ``C`` or a list of class
            indices (or names). With ``gamma``, classification uses GZSL calibrated stacking.
        gamma: calibration strength in probability units: ``softmax(scores) - gamma * seen``.
        attribute_names: one name per attribute (``A``).
        preprocess: ``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``, ``crop_mode``,
            ``object_extent`` (see :func:`zeromamba.preprocess_config.resolve_preprocess`): the keys given
            replace the model's own. Default: the model's own preprocessing, from its
            ``pretrained_cfg`` (:func:`~zeromamba.preprocess_config.model_preprocess`: a model from
            :func:`~zeromamba.from_pretrained`, :func:`~zeromamba.load_model` or ``timm.create_model``
            carries it, framing included); a model without one gets the authors' plain 448 x 448
            resize with ImageNet mean/std.
        device: where the model runs (default: where its parameters are).
        dtype: the compute precision (default: the model's). ``torch.bfloat16`` (or ``"bfloat16"``)
            on a CPU converts the weights to bfloat16 (fast where the CPU has AVX-512 BF16 or AMX;
            the selective scan still runs in float32); ``float16`` / ``bfloat16`` on CUDA run under
            :func:`torch.autocast` with float32 weights. ``"int8"`` (CPU only) runs the large
            linear layers in int8 (:mod:`zeromamba.models.int8`); :class:`~zeromamba.errors.Int8UnavailableError`
            where this machine has no int8 kernel.
        batch_size: images per forward pass.

    The model is moved to ``device`` in place and put in eval mode. Calls never modify the
    predictor, so one predictor may serve several threads at once. Set :attr:`max_pixels` to change
    the largest image accepted (default 100 million pixels).
    """

    #: images with more pixels are refused with :class:`~zeromamba.errors.ImageError` (None: no limit)
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __init__(
        self,
        model: nn.Module,
        class_attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | None = None,
        seen: Any = None,
        gamma: float = 0.0,
        attribute_names: Sequence[str] | None = None,
        preprocess: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (a ZeroMamba), got {type(model).__name__}")
        self.is_zeromamba = isinstance(model, ZeroMamba)
        self.model = model.eval()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._place(device, dtype)
        self.num_attributes: int | None = int(model.num_attributes) if self.is_zeromamba else None

        if attribute_names is not None:
            attribute_names = [str(a) for a in attribute_names]
            if self.num_attributes is not None and len(attribute_names) != self.num_attributes:
                raise AttributeMatrixError(
                    f"{len(attribute_names)} attribute names for a model with {self.num_attributes} attributes"
                )
        self.attribute_names: list[str] | None = attribute_names

        self.class_attributes: torch.Tensor | None = None
        names = [str(n) for n in class_names] if class_names is not None else None
        if class_attributes is not None:
            if not self.is_zeromamba:
                raise AttributeMatrixError(
                    "class_attributes need a ZeroMamba model; this model is a plain classifier (give class_names only)"
                )
            self.class_attributes, names = load_class_attributes(
                class_attributes, self.num_attributes, class_names=names, attribute_names=attribute_names
            )
        elif names is not None and self.is_zeromamba:
            raise AttributeMatrixError("class_names given without class_attributes; pass both")
        elif names is not None:
            require_unique_names(names, "class_names")
            n_out = getattr(model, "num_classes", None)
            if n_out is not None and n_out != len(names):
                raise AttributeMatrixError(f"{len(names)} class names for a classifier with {n_out} outputs")
        self.class_names: list[str] | None = names
        num_classes = self._num_own_classes()
        if seen is not None and num_classes is None:
            raise AttributeMatrixError("seen classes given but the predictor has no classes; pass class_attributes")
        self.seen: torch.Tensor | None = seen_mask(seen, num_classes or 0, names) if seen is not None else None
        self.gamma = check_gamma(gamma)
        self.preprocess: dict[str, Any] = resolve_preprocess(preprocess, base=model_preprocess(model))
        self.batch_size = check_batch_size(batch_size)

    # --- public API --------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """How many classes the predictor has of its own (``None``: none)."""
        return self._num_own_classes()

    @property
    def transform(self) -> ImageTransform:
        """The exact preprocessing of this predictor as a picklable callable, ``PIL image (or path,
        array, uint8 tensor) -> (3, H, W) normalised float32 tensor``, for your own DataLoader;
        :meth:`classify` takes the resulting float tensors (or a stacked batch) unchanged."""
        return ImageTransform(self.preprocess, self.max_pixels)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Predictor:
        """Move the model to ``device`` and/or set the compute precision ``dtype``, in place; returns
        the predictor (``predictor.to("cuda", "bfloat16")``). bfloat16 on a CPU converts the
        weights to bfloat16; half precisions on CUDA run under autocast with float32 weights;
        ``"int8"`` runs the large linear layers in int8 on the CPU, and another dtype brings the
        float32 layers back exactly (see the class docs).

        Raises:
            DeviceError: ``device`` is not available here.
            ConfigError: an unknown dtype.
            Int8UnavailableError: int8 on a device other than the CPU (also: moving an int8
                predictor there), or no int8 kernel on this machine.
        """
        self._place(device, dtype)
        return self

    def __call__(
        self, images: ImageInput | Sequence[ImageInput], *args: Any, **kwargs: Any
    ) -> ClassificationResult | ResultList[ClassificationResult]:
        """Same as :meth:`classify`."""
        return self.classify(images, *args, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> Any:
        """Write ``model.safetensors`` + ``config.json`` (see :func:`zeromamba.save_pretrained`)."""
        from .format import save_pretrained

        return save_pretrained(self, directory)

    def classify(
        self,
        images: ImageInput | Sequence[ImageInput],
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        top_k: int | None = 5,
        gamma: float | None = None,
        seen: Any = None,
        *,
        batch_size: int | None = None,
    ) -> ClassificationResult | ResultList[ClassificationResult]:
        """Rank classes for each image.

        Args:
            images: one input or a list (see :mod:`zeromamba.images` for the conventions; float
                tensors are taken as already preprocessed, e.g. by :attr:`transform`).
            attributes: classes to score against instead of the predictor's own: a ``C x A``
                matrix, a dict name -> vector, or a ``.csv`` / ``.npy`` file
                (see :func:`~zeromamba.classes.load_class_attributes`). Rows are L2-normalised.
            class_names: names for the rows (override names from a dict or CSV).
            top_k: how many classes to list (``None``: all).
            gamma: calibration strength (default: the predictor's).
            seen: which classes count as seen (mask or indices; default: the predictor's own for
                its own classes, none for ``attributes``). Calibrated stacking applies when some
                class is seen and ``gamma`` is non-zero.
            batch_size: images per forward pass (default: :attr:`batch_size`).

        Returns:
            A :class:`ClassificationResult` for a single image (a path, PIL image, array or 3-D
            tensor), else a :class:`ResultList` of them. ``result.ranked_by`` says which score
            ordered the classes.

        Raises:
            ImageError: an image cannot be read (:meth:`classify_iter` can skip those instead).
            AttributeMatrixError: bad classes or seen mask.
        """
        sources, single = _as_list(images)
        results: ResultList[ClassificationResult] = ResultList(
            self.classify_iter(sources, attributes, class_names, top_k, gamma, seen, batch_size=batch_size)
        )
        return results[0] if single else results

    def classify_iter(
        self,
        images: Sequence[ImageInput],
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        top_k: int | None = 5,
        gamma: float | None = None,
        seen: Any = None,
        *,
        batch_size: int | None = None,
        num_workers: int = 0,
        skip_errors: bool = False,
        with_attribute_values: bool = False,
    ) -> Iterator[ClassificationResult | ImageFailure]:
        """:meth:`classify` for many images, streamed: results come in input order, one batch at a
        time, while the next batches are decoded (in ``num_workers`` DataLoader worker processes
        when ``num_workers > 0``). Arguments as in :meth:`classify`.

        Args:
            skip_errors: yield an :class:`~zeromamba.results.ImageFailure` (source and reason) for
                an image that cannot be read and go on, instead of raising :class:`ImageError`.
            with_attribute_values: put each image's predicted attribute vector on its result
                (``result.attribute_values``; a ZeroMamba model only), from the same forward pass.

        The arguments and the classes are checked when it is called, the images as they come.
        """
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be at least 1 (or None for all classes), got {top_k}")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
        if with_attribute_values:
            self._require_zeromamba("with_attribute_values")
        classes = self._classes(attributes, class_names, seen, gamma)
        size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        batches = iter_batches(
            _as_list(images)[0],
            self.preprocess,
            batch_size=size,
            num_workers=int(num_workers),
            max_pixels=self.max_pixels,
        )
        return self._stream(batches, classes, top_k, size, skip_errors, with_attribute_values)

    def _stream(
        self,
        batches: Iterator[list[DecodedItem]],
        classes: Candidates,
        top_k: int | None,
        size: int,
        skip: bool,
        with_values: bool = False,
    ) -> Iterator[ClassificationResult | ImageFailure]:
        for items in batches:
            prepared = [p for item in items for p in item.prepared]
            ranked: list[ClassificationResult] = []
            if prepared:
                out = self._run(prepared, attention=False, batch_size=size)
                scores = out["scores"] if classes.matrix is None else class_scores(out["attributes"], classes.matrix)
                require_finite(scores, "class scores", [p.source for p in prepared])
                ranked = rank_classes(scores, classes, top_k, [p.source for p in prepared])
                if with_values:
                    for result, values in zip(ranked, out["attributes"].tolist()):
                        result.attribute_values = values
            pos = 0
            for item in items:
                if item.error is not None:
                    if not skip:
                        raise ImageError(item.error)
                    yield ImageFailure(item.source, item.error)
                yield from ranked[pos : pos + len(item.prepared)]
                pos += len(item.prepared)

    def predict_attributes(
        self, images: ImageInput | Sequence[ImageInput], *, batch_size: int | None = None
    ) -> AttributePrediction | ResultList[AttributePrediction]:
        """The predicted attribute vector of each image (one result for a single image, else a list)."""
        self._require_zeromamba("predict_attributes")
        sources, single = _as_list(images)
        prepared = self._prepare(sources)
        names = self._attribute_names()
        results: ResultList[AttributePrediction] = ResultList()
        if prepared:
            size = self.batch_size if batch_size is None else check_batch_size(batch_size)
            attrs = self._run(prepared, attention=False, batch_size=size)["attributes"]
            for p, row in zip(prepared, attrs.tolist()):
                results.append(AttributePrediction(values=row, attribute_names=list(names), source=p.source))
        return results[0] if single else results

    def explain(
        self,
        image: ImageInput,
        target: str | int | Sequence[str | int] | None = None,
        top_k: int = 6,
        *,
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        gamma: float | None = None,
        seen: Any = None,
        method: str | None = None,
        **deprecated: Any,
    ) -> Explanation:
        """Where the evidence for some attributes is: one map per attribute, at the image's size.

        Args:
            image: one image.
            target: what to explain (``--target`` on the command line):

                * ``None``: the predicted class, through its ``top_k`` attributes with the largest
                  contribution ``attribute value * class attribute`` to its score, leaving out
                  attributes that contribute nothing (without classes: the ``top_k`` highest
                  predicted attributes);
                * a class name: that class, the same way;
                * attribute names or indices (ints are attribute indices): those attributes.
            top_k: how many attributes to show when choosing them automatically.
            attributes: candidate classes, as in :meth:`classify`.
            class_names: their names, as in :meth:`classify`.
            gamma: calibrated stacking, as in :meth:`classify`.
            seen: which classes were seen in training, as in :meth:`classify`.
            method: ``occlusion`` (452 extra forward passes), ``gradient`` or ``attention`` (the
                SLP's own attention, the paper's view); see :mod:`zeromamba.attribution`. ``None``:
                occlusion for model inputs up to 224 pixels a side (the shipped demo model), attention
                above (the published 448 models, where occlusion would take minutes on a CPU).

        Returns:
            An :class:`~zeromamba.explain.Explanation`; ``.save_png(path)`` renders it.
        """
        from .attribution import attribute_maps, resolve_method
        from .explain import build_explanation

        if "classes_or_attributes" in deprecated:  # the argument's name before 0.2
            warnings.warn("explain(classes_or_attributes=...) is now explain(target=...)", FutureWarning, stacklevel=2)
            target = deprecated.pop("classes_or_attributes")
        if deprecated:
            raise TypeError(f"explain() got unexpected keyword arguments: {', '.join(sorted(deprecated))}")
        self._require_zeromamba("explain")
        method = resolve_method(method, self.preprocess["input_size"])
        if int(top_k) < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        have_classes = attributes is not None or self.class_attributes is not None
        classes = self._classes(attributes, class_names, seen, gamma) if have_classes else None
        sources, single = _as_list(image)
        prepared = self._prepare(sources, keep_image=True)
        if len(prepared) != 1:
            raise ImageError(f"explain takes one image, got {len(prepared)}; call it once per image")
        item = prepared[0]
        out = self._run(prepared, attention=True)
        values = out["attributes"][0]
        attention = out["attention"][0]  # (A, h, w)
        names = self._attribute_names()
        shown = explanation_target(values, classes, target, names, int(top_k), item.source)
        chosen, contributions = shown.attributes, shown.contributions
        grid = attention[chosen]
        if method != "attention":
            x = item.tensor[None].to(self.device, inference_input_dtype(self.dtype))
            mean, std = self.preprocess["mean"], self.preprocess["std"]
            grid = attribute_maps(self.model, x, chosen, method, max(8, self.batch_size), mean, std)[0].float().cpu()
        return build_explanation(
            image=item.display_image(self.preprocess["mean"], self.preprocess["std"]),
            attention=grid,
            box=item.box,
            attribute_indices=chosen,
            attribute_names=[names[i] for i in chosen],
            attribute_values=values[chosen].tolist(),
            contributions=contributions[chosen].tolist() if contributions is not None else None,
            class_info=shown.class_info,
            source=item.source,
            method=method,
        )

    def __repr__(self) -> str:
        kind = type(self.model).__name__
        n = self.num_classes
        return (
            f"Predictor({kind}, classes={n if n is not None else 'none'}, attributes={self.num_attributes}, "
            f"seen={int(self.seen.sum()) if self.seen is not None else 'none'}, gamma={self.gamma}, "
            f"input={self.preprocess['input_size'][1:]}, device={self.device}, dtype={self.dtype})"
        )

    # --- internals ---------------------------------------------------------------------------------

    def _num_own_classes(self) -> int | None:
        if self.class_attributes is not None:
            return int(self.class_attributes.shape[0])
        if not self.is_zeromamba:
            n = getattr(self.model, "num_classes", None)
            return int(n) if n else (len(self.class_names) if self.class_names else None)
        return None

    def _require_zeromamba(self, what: str) -> None:
        if not self.is_zeromamba:
            raise ConfigError(f"{what} needs a ZeroMamba model; this predictor wraps a {type(self.model).__name__}")

    def _attribute_names(self) -> list[str]:
        if self.attribute_names is not None:
            return list(self.attribute_names)
        return [f"attribute {i}" for i in range(self.num_attributes or 0)]

    def _classes(self, attributes: Any, class_names: Any, seen: Any, gamma: float | None) -> Candidates:
        """Resolve the candidate classes of one call into an immutable snapshot."""
        gamma_value = check_gamma(self.gamma if gamma is None else gamma)
        if attributes is not None:
            if not self.is_zeromamba:
                raise AttributeMatrixError(
                    f"attributes need a ZeroMamba model; this predictor wraps a {type(self.model).__name__}"
                )
            matrix, names = load_class_attributes(
                attributes, self.num_attributes, class_names=class_names, attribute_names=self.attribute_names
            )
            mask = seen_mask(seen, matrix.shape[0], names)
        else:
            num = self._num_own_classes()
            if num is None:
                raise AttributeMatrixError(
                    "this predictor has no classes of its own; pass attributes= (a class-attribute matrix, dict or CSV)"
                )
            matrix = self.class_attributes
            names = self.class_names
            if class_names is not None:
                names = load_class_names(class_names)
                if len(names) != num:
                    raise AttributeMatrixError(f"{len(names)} class names for {num} classes; give one name per class")
            mask = self.seen if seen is None else seen_mask(seen, num, names)
        num_classes = int(matrix.shape[0]) if matrix is not None else int(self._num_own_classes() or 0)
        names = list(names) if names is not None else [f"class {i}" for i in range(num_classes)]
        calibrate = mask is not None and bool(mask.any()) and gamma_value != 0.0
        return Candidates(matrix, names, mask, gamma_value if calibrate else None, num_classes)

    def _place(self, device: str | torch.device | None, dtype: str | torch.dtype | None) -> None:
        """Move the model and set :attr:`device` / :attr:`dtype` (``None``: where / what it is now)."""
        target = check_device(device)
        if target is None:
            param = next(self.model.parameters(), None)
            target = param.device if param is not None else torch.device("cpu")
        int8 = is_int8(self.model) if dtype is None else parse_inference_dtype(dtype) == torch.int8
        if int8:  # float32 weights, the large linear layers in int8 (zeromamba.models.int8)
            if target.type != "cpu":
                raise Int8UnavailableError(
                    f"int8 inference runs on the CPU, not on {target}; use device='cpu', or dtype='float32' / "
                    "'bfloat16' on this device"
                )
            self.model, self.dtype, self.device = quantize_int8(self.model.to(target)), torch.int8, target
            return
        dequantize_int8(self.model)
        self.dtype = requested_dtype(dtype, self.model)
        # bfloat16 on CPU: bfloat16 weights (oneDNN's kernels); reduced precision elsewhere: float32
        # weights under autocast (see runtime.inference_weight_dtype)
        weights = None if dtype is None else inference_weight_dtype(self.dtype, target)
        self.model = self.model.to(device=target, dtype=weights)
        self.device = target

    def _prepare(self, sources: list[Any], keep_image: bool = False) -> list[PreparedImage]:
        prepared: list[PreparedImage] = []
        for items in iter_batches(
            sources, self.preprocess, batch_size=max(1, len(sources)), max_pixels=self.max_pixels, keep_image=keep_image
        ):
            for item in items:
                if item.error is not None:
                    raise ImageError(item.error)
                prepared.extend(item.prepared)
        return prepared

    def _run(self, prepared: list[PreparedImage], attention: bool, batch_size: int | None = None) -> dict[str, Any]:
        return run_model(
            self.model,
            prepared,
            device=self.device,
            dtype=self.dtype,
            attention=attention,
            batch_size=batch_size or self.batch_size,
        )


def _as_list(images: Any) -> tuple[list[Any], bool]:
    """``(inputs, single)``: a list/tuple is many images; anything else (a 4-D tensor too) is one input."""
    if isinstance(images, (list, tuple)):
        return list(images), False
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return [images], False
    return [images], True
