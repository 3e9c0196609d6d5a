"""Classifying a table of images batch by batch: :class:`BatchClassifier`, the callable class that
Ray Data's ``Dataset.map_batches`` and Hugging Face ``datasets.Dataset.map(batched=True)`` take::

    ds.map_batches(zeromamba.BatchClassifier, fn_constructor_kwargs={"model": "cub-gzsl"},
                   compute=ray.data.ActorPoolStrategy(size=4), batch_size=32)   # Ray Data
    ds.map(zeromamba.BatchClassifier("cub-gzsl"), batched=True, batch_size=32)   # datasets

It is constructed once per worker with the model's name or folder and the classes, loads the model
on its first batch (in the process that runs it: a Ray actor, a datasets worker), and returns each
batch with result columns added (:data:`~zeromamba.record_table.RESULT_COLUMNS`: ``class``,
``score``, ``probability``, then the fields of the record ``zeromamba classify --format jsonl``
writes for the image, ``predictions`` holding the top-k classes with their scores; optionally
``attribute_values``). An image that cannot be read is a row with ``error`` set, never the end of
the job.

Pickling it carries the settings, not the model, so it travels cheaply to workers and datasets can
fingerprint it. In a process forked from the one that imported this module (the workers of
``datasets.map(num_proc=N)``), PyTorch runs on one thread: the OpenMP threads of the parent are not
copied by a fork, and an OpenMP region with more threads in the child waits for them forever.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from .classes import AttributeTable, ClassAttributes, load_class_names, read_class_attribute_file
from .errors import ConfigError
from .hubcheck import check_model_name
from .record_table import result_columns, result_types

__all__ = ["IMAGE_COLUMNS", "BatchClassifier"]

#: the columns a batch's images are taken from when ``column`` is not given, in this order: encoded
#: bytes, pixels or PIL images (``image``), encoded bytes (``bytes``, Ray Data's ``read_binary_files``),
#: file paths (``path``), URLs (``url``)
IMAGE_COLUMNS: tuple[str, ...] = ("image", "bytes", "path", "url")
#: columns that name a row's image, for the messages about images that cannot be read
_NAME_COLUMNS = ("path", "url")

# the process that imported this module; a different pid with the module already loaded is a fork
_IMPORTED_IN = os.getpid()


class BatchClassifier:
    """Zero-shot classification of a batch of table rows, for Ray Data and Hugging Face datasets.

    Args:
        model: a zoo name, a Hub repository ``owner/name`` or a model folder, as for
            :func:`~zeromamba.from_pretrained`; on a cluster, a folder must be readable on every node.
        attributes: classes to score against instead of the model's own: a ``C x A`` matrix, a dict
            ``name -> vector``, or a ``.csv`` / ``.npy`` file, read now (in the process that builds the
            classifier) and carried to the workers with it.
        class_names: names for the rows of ``attributes`` (a list, or a text file read now).
        top_k: how many classes each row's ``predictions`` lists (``None``: all).
        gamma: GZSL calibration strength (default: the model's).
        device: where the model runs (as for ``from_pretrained``).
        dtype: in what precision it runs (as for ``from_pretrained``).
        batch_size: images per forward pass (a batch of rows may hold more).
        with_attribute_values: add ``attribute_values``, each image's predicted attribute vector.
        column: the column holding the images (default: the first of :data:`IMAGE_COLUMNS` the batch
            has). It may hold encoded bytes, ``{"bytes": ..., "path": ...}`` dicts (``datasets``'
            ``Image(decode=False)``), PIL images, ``H x W x C`` arrays, file paths or URLs.
        revision: the Hub revision of ``model``.
        timeout: the seconds to wait for the Hub.
        num_threads: PyTorch threads in each worker (default: PyTorch's own choice, which Ray sets to
            the actor's CPUs; one in a forked worker).

    Calling it with a batch returns the batch with the result columns added, in the batch's own
    form: a dict of numpy arrays (Ray Data's default; object arrays, ``None`` where a value is
    missing), a ``datasets`` batch (lists; the input columns are left to ``datasets`` as they are),
    a ``pyarrow.Table`` or a ``pandas.DataFrame``.

    Raises:
        ConfigError: bad settings (``top_k``, ``batch_size``, ``column``).
        UnknownModelError, ModelNotAvailableError: a model name that cannot be loaded (at once where it
            can be told without the network, else on the first batch).
        AttributeMatrixError: an unreadable ``attributes`` or ``class_names`` file.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        *,
        top_k: int | None = 5,
        gamma: float | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        with_attribute_values: bool = False,
        column: str | None = None,
        revision: str | None = None,
        timeout: float | None = None,
        num_threads: int | None = None,
    ) -> None:
        if not isinstance(model, (str, os.PathLike)):
            raise ConfigError(
                f"model must be a zoo name, a Hub repository or a folder (a string), got {type(model).__name__}; "
                "save a Predictor with save_pretrained(folder) and pass the folder"
            )
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a whole number of at least 1 (or None for all classes), got {top_k!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ConfigError(f"num_threads must be a whole number of at least 1, got {num_threads!r}")
        if column is not None and not isinstance(column, str):
            raise ConfigError(f"column must be a column name, got {column!r}")
        if revision is None:
            check_model_name(model)
        if isinstance(attributes, (str, os.PathLike)):
            attributes = read_class_attribute_file(attributes)  # the file's contents travel, not its path
        if isinstance(class_names, (str, os.PathLike)):
            class_names = load_class_names(class_names)
        self.model = os.fspath(model)
        self.attributes: AttributeTable | Any = attributes
        self.class_names = list(class_names) if class_names is not None else None
        self.top_k = top_k
        self.gamma = gamma
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.with_attribute_values = bool(with_attribute_values)
        self.column = column
        self.revision = revision
        self.timeout = timeout
        self.num_threads = num_threads
        self._predictor: Any = None
        self._loaded_in: int | None = None

    # --- pickling: the settings travel, the model is loaded where it runs ---------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_predictor"] = None
        state["_loaded_in"] = None
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        classes = "own classes" if self.attributes is None else "given classes"
        return (
            f"BatchClassifier({self.model!r}, {classes}, top_k={self.top_k}, batch_size={self.batch_size}, "
            f"device={self.device!r}, dtype={self.dtype!r})"
        )

    # --- the model ---------------------------------------------------------------------------------

    @property
    def predictor(self) -> Any:
        """The :class:`~zeromamba.predictor.Predictor`, loaded in this process on first use."""
        if self._predictor is None or self._loaded_in != os.getpid():
            self._set_threads()
            from .factory import from_pretrained

            kwargs: dict[str, Any] = {"device": self.device, "dtype": self.dtype, "timeout": self.timeout}
            if self.revision is not None:
                kwargs["revision"] = self.revision
            if self._predictor is None:
                self._predictor = from_pretrained(self.model, batch_size=self.batch_size, **kwargs)
            self._loaded_in = os.getpid()
        return self._predictor

    def _set_threads(self) -> None:
        import torch

        if os.getpid() != _IMPORTED_IN:  # a forked process: one thread, or OpenMP waits forever
            if self.num_threads not in (None, 1):
                warnings.warn(
                    f"BatchClassifier runs in a forked process: PyTorch uses one thread, not {self.num_threads} "
                    "(the parent's OpenMP threads do not survive a fork)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            torch.set_num_threads(1)
        elif self.num_threads is not None:
            torch.set_num_threads(self.num_threads)

    # --- a batch -----------------------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        """Classify the images of ``batch``; the batch with the result columns added."""
        columns = _column_names(batch)
        column = self._image_column(columns)
        images = [_as_image_input(value) for value in _column_values(batch, column)]
        results = list(
            self.predictor.classify_iter(
                images,
                attributes=self.attributes,
                class_names=self.class_names,
                top_k=self.top_k,
                gamma=self.gamma,
                batch_size=self.batch_size,
                skip_errors=True,
                with_attribute_values=self.with_attribute_values,
            )
        )
        if len(results) != len(images):  # a 4-D tensor in a cell holds several images
            raise ConfigError(
                f"column {column!r} gave {len(results)} images for {len(images)} rows; give one image per row"
            )
        names = next((n for n in _NAME_COLUMNS if n in columns and n != column), None)
        if names is not None:  # messages about unreadable images name the file, not "image 3"
            for result, name in zip(results, _column_values(batch, names)):
                if not hasattr(result, "indices") and name is not None:
                    result.reason = result.reason.replace(result.source, str(name), 1)
        records = [result.to_record() for result in results]
        return _with_columns(batch, result_columns(records, self.with_attribute_values), self.with_attribute_values)

    def _image_column(self, columns: Sequence[str]) -> str:
        if self.column is not None:
            if self.column not in columns:
                raise ConfigError(f"the batch has no column {self.column!r}; its columns: {', '.join(columns)}")
            return self.column
        for name in IMAGE_COLUMNS:
            if name in columns:
                return name
        raise ConfigError(
            f"the batch has none of the columns {', '.join(IMAGE_COLUMNS)} (its columns: {', '.join(columns)}); "
            "name the column of images with column=..."
        )


# --- batch forms ---------------------------------------------------------------------------------


def _kind(batch: Any) -> str:
    module = type(batch).__module__.split(".")[0]
    if module == "pyarrow":
        return "arrow"
    if module == "pandas":
        return "pandas"
    if isinstance(batch, Mapping):
        return "mapping"
    raise ConfigError(
        f"a batch must be a dict of columns, a pyarrow.Table or a pandas.DataFrame, got {type(batch).__name__}"
    )


def _column_names(batch: Any) -> list[str]:
    kind = _kind(batch)
    if kind == "arrow":
        return list(batch.column_names)
    return [str(c) for c in (batch.columns if kind == "pandas" else batch.keys())]


def _column_values(batch: Any, column: str) -> list[Any]:
    kind = _kind(batch)
    if kind == "arrow":
        return batch.column(column).to_pylist()
    if kind == "pandas":
        return batch[column].tolist()
    return list(batch[column])


def _as_image_input(value: Any) -> Any:
    """A cell as an input of the predictor: ``{"bytes", "path"}`` dicts as their bytes (else path),
    numpy strings and bytes as Python ones."""
    import numpy as np

    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        return data if data is not None else path
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, np.bytes_):
        return bytes(value)
    return value


def _with_columns(batch: Any, columns: dict[str, list], with_values: bool) -> Any:
    kind = _kind(batch)
    if kind == "arrow":
        import pyarrow as pa

        types = result_types(with_values)
        for name, values in columns.items():
            index = batch.schema.get_field_index(name)
            array = pa.array(values, type=types[name])
            batch = batch.set_column(index, name, array) if index >= 0 else batch.append_column(name, array)
        return batch
    if kind == "pandas":
        batch = batch.copy(deep=False)
        for name, values in columns.items():
            batch[name] = values
        return batch
    # a dict: numpy arrays in (Ray Data) get numpy arrays back, lists (datasets) lists
    as_numpy = any(type(v).__module__ == "numpy" for v in batch.values())
    for name, values in columns.items():
        batch[name] = _object_array(values) if as_numpy else values
    return batch


def _object_array(values: list) -> Any:
    import numpy as np

    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # one by one: a list value must stay one cell
        array[i] = value
    return array
