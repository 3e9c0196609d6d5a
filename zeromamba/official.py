"""Loading the authors' checkpoints: ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth`` files, the VMamba
v2 ImageNet release files (``{"model": state_dict}``) and the Vim release files
(``hustvl/Vim-*-midclstok``: ``{"model": ..., "optimizer": ..., "epoch": ..., "args": Namespace}``).

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, plus
exactly one class, ``argparse.Namespace`` (the training arguments DeiT-style trainers store under
``args``). Any other pickled object is refused before it is built, so no code in the file runs.
The architecture is read off the tensor shapes, so ``load_official(path)`` needs no arguments for
the published files; keyword arguments override (a Vim file's ``img_size`` / ``stride`` when they
are not the release's 224 / 16).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import stat
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from .architectures import default_dt_rank
from .errors import CheckpointError
from .models._helpers import load_state_dict_strict, unwrap_state_dict
from .models.vim import Vim
from .models.vim import checkpoint_filter_fn as vim_filter_fn
from .models.vmamba import VMamba
from .models.vmamba import checkpoint_filter_fn as vmamba_filter_fn
from .models.zeromamba import ZeroMamba
from .models.zeromamba import checkpoint_filter_fn as zeromamba_filter_fn
from .pickle_scan import pickle_globals, refused_globals

__all__ = [
    "SAFE_GLOBALS",
    "infer_architecture",
    "infer_vim_architecture",
    "is_vim_state_dict",
    "load_official",
    "read_official_state_dict",
]

#: the only classes a checkpoint may contain besides tensors and plain containers
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


#: the largest pickle (the ``data.pkl`` of a zip checkpoint, or a legacy file's pickles) zeromamba reads;
#: the tensors' bytes are stored beside it, so a real checkpoint's pickle is a few MB
MAX_PICKLE_BYTES = 256 << 20
#: a compressed zip member may expand at most this much (torch.save stores members uncompressed)
MAX_ZIP_RATIO = 20


def _allowed_globals() -> set[str]:
    """What ``torch.load(weights_only=True)`` builds by itself, plus :data:`SAFE_GLOBALS`."""
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed |= set(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - a torch without the private table
        pass
    return allowed


def _refuse_code(path: str, refused: list[str]) -> CheckpointError:
    names = ", ".join(refused[:10]) + (" ..." if len(refused) > 10 else "")
    return CheckpointError(
        f"{path!r} asks the unpickler to import {names}: loading it could run code, so zeromamba refuses it "
        "(a checkpoint may hold only tensors, plain containers and argparse.Namespace). Nothing in it was run. "
        "If you trust the file, re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as "
        "safetensors."
    )


def _pickle_imports(path: str, size: int) -> list[str]:
    """What the pickle part of a checkpoint would import, read within bounds: a zip's ``data.pkl`` (every
    member's declared and compressed sizes checked first, so a decompression bomb is refused unread), else
    the pickles at the file's start, decoded opcode by opcode from the file."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                members = zf.infolist()
                for m in members:
                    ratio = m.file_size / max(m.compress_size, 1)
                    if m.file_size > size * MAX_ZIP_RATIO or (
                        m.compress_type != zipfile.ZIP_STORED and ratio > MAX_ZIP_RATIO
                    ):
                        raise CheckpointError(
                            f"{path!r}: zip member {m.filename!r} expands from {m.compress_size:,} to {m.file_size:,} "
                            "bytes (a decompression bomb, or not a file torch.save wrote): refused unread"
                        )
                pkl = [m for m in members if m.filename.endswith("data.pkl")]
                if len(pkl) != 1:
                    raise CheckpointError(f"{path!r} is a zip file but not a PyTorch checkpoint (no single data.pkl)")
                if pkl[0].file_size > MAX_PICKLE_BYTES:
                    raise CheckpointError(
                        f"{path!r}: its pickle is {pkl[0].file_size:,} bytes, more than the {MAX_PICKLE_BYTES:,} "
                        "a checkpoint's needs: refused unread"
                    )
                with zf.open(pkl[0]) as f:
                    return pickle_globals(f.read(MAX_PICKLE_BYTES + 1))
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
            raise CheckpointError(f"cannot read {path!r} as a PyTorch checkpoint (damaged zip: {e})") from None
    with open(path, "rb") as f:  # legacy format / plain pickle: the pickles come first, tensor bytes after
        return pickle_globals(f)


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` safely and unwrap ``{"model": ...}`` / ``{"state_dict": ...}``.

    Before any unpickler runs, the file must be a regular file, a zip's members must not expand
    beyond bounds, and the pickle's imports are read without running it: any import outside
    tensors, plain containers and ``argparse.Namespace`` is refused by name, whatever pickle
    protocol the file uses. ``torch.load(weights_only=True)`` then loads it as a second guard.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"checkpoint not found: {path!r}") from None
    except OSError as e:
        raise CheckpointError(f"cannot open checkpoint {path!r}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"checkpoint {path!r} is not a regular file (a folder, FIFO or device): refused unread")
    refused = refused_globals(_pickle_imports(path, st.st_size), _allowed_globals())
    if refused:
        raise _refuse_code(path, refused)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # the scan missed it; torch's own guard did not
            raise _refuse_code(path, [_torch_refused_global(str(e))]) from None
        raise CheckpointError(f"cannot read {path!r} as a PyTorch checkpoint (damaged or not a .pth file)") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"cannot read {path!r} as a PyTorch checkpoint: {e}") from None
    obj = unwrap_state_dict(obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path!r} does not hold a state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in obj.items()}


def _torch_refused_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip().split(" was not")[0].removeprefix("Unsupported global: GLOBAL ")
    return message.splitlines()[0]


def is_vim_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a Vim state dict (its class token, position embedding and bidirectional mixers)."""
    return "pos_embed" in state_dict and "layers.0.mixer.A_b_log" in state_dict


def infer_vim_architecture(state_dict: Mapping[str, torch.Tensor], stride: int = 16) -> dict[str, Any]:
    """:class:`~zeromamba.models.Vim` arguments read off a Vim state dict's shapes.

    The patch stride cannot be seen in the shapes (give it when it is not 16); the input size is
    the square one whose patch grid (at that stride) has as many positions as ``pos_embed``.

    Raises:
        CheckpointError: a parameter is missing, or the position embedding covers no square grid
            (then ``img_size`` must be given).
    """
    try:
        proj = state_dict["patch_embed.proj.weight"]
        A_log = state_dict["layers.0.mixer.A_log"]
        conv = state_dict["layers.0.mixer.conv1d.weight"]
        dt_rank = state_dict["layers.0.mixer.dt_proj.weight"].shape[1]
        positions = state_dict["pos_embed"].shape[1] - 1
    except KeyError as e:
        raise CheckpointError(f"not a Vim checkpoint: parameter {e.args[0]!r} is missing") from None
    embed_dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k)))
    args: dict[str, Any] = dict(
        embed_dim=embed_dim,
        depth=depth,
        d_state=int(A_log.shape[1]),
        patch_size=patch,
        stride=int(stride),
        expand=int(A_log.shape[0]) // embed_dim,
        d_conv=int(conv.shape[-1]),
        num_classes=int(state_dict["head.weight"].shape[0]) if "head.weight" in state_dict else 0,
    )
    side = math.isqrt(positions)
    if side * side == positions:
        args["img_size"] = (side - 1) * int(stride) + patch
    if default_dt_rank(embed_dim) != dt_rank:
        args["dt_rank"] = int(dt_rank)
    if int(proj.shape[1]) != 3:
        args["in_chans"] = int(proj.shape[1])
    return args


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read ``embed_dim``, ``depths``, ``d_state``, ``ssm_ratio`` (and, for ZeroMamba,
    ``num_attributes``, ``semantic_dim``, ``fusion_hidden``) off an official state dict's shapes."""
    prefix = "VisionMamba." if any(k.startswith("VisionMamba.") for k in state_dict) else ""
    try:
        embed_dim = state_dict[prefix + "patch_embed.5.weight"].shape[0]
        depths: dict[int, int] = {}
        for k in state_dict:
            m = re.match(re.escape(prefix) + r"layers\.(\d+)\.blocks\.(\d+)\.", k)
            if m:
                i, j = int(m.group(1)), int(m.group(2))
                depths[i] = max(depths.get(i, 0), j + 1)
        first = prefix + "layers.0.blocks.0.op."
        d_state = state_dict[first + "A_logs"].shape[1]
        d_inner = state_dict[first + "in_proj.weight"].shape[0]
        dt_rank = state_dict[first + "dt_projs_weight"].shape[2]
        num_imagenet = state_dict[prefix + "classifier.head.weight"].shape[0]
        mlp_hidden = state_dict[prefix + "layers.0.blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"not a VMamba v2 / ZeroMamba checkpoint: parameter {e.args[0]!r} is missing") from None
    args: dict[str, Any] = dict(
        embed_dim=int(embed_dim),
        depths=tuple(depths[i] for i in sorted(depths)),
        d_state=int(d_state),
        ssm_ratio=d_inner / embed_dim,
        mlp_ratio=mlp_hidden / embed_dim,
        ssm_conv_bias=(first + "conv2d.bias") in state_dict,
    )
    if default_dt_rank(embed_dim) != dt_rank:
        args["dt_rank"] = int(dt_rank)
    if prefix:
        args["num_attributes"] = int(state_dict[prefix + "classifier2.V"].shape[0])
        args["semantic_dim"] = int(state_dict[prefix + "classifier2.V"].shape[1])
        if "clf_head2.0.weight" in state_dict:
            args["fusion_hidden"] = int(state_dict["clf_head2.0.weight"].shape[0])
        args["num_imagenet_classes"] = int(num_imagenet)
    else:
        args["num_classes"] = int(num_imagenet)
    return args


def load_official(path: str | os.PathLike, **model_args: Any) -> ZeroMamba | VMamba | Vim:
    """Load an authors' checkpoint into our model, in eval mode.

    Args:
        path: an official ZeroMamba state dict (``.pth``, with or without ``clf_head.bias``), an
            official VMamba v2 release file (``{"model": state_dict}``) or a Vim release file.
        **model_args: override what is read off the tensor shapes (``scan_backend``, ``attribute
            embeddings`` etc. are passed through to the constructor). For Vim: ``stride`` when the
            file is a stride-8 model, ``img_size`` (int or ``(H, W)``) to build the model at another
            input size (the position embedding is resized as a 2-D grid) or when the file's grid
            is not square.

    Returns:
        :class:`~zeromamba.models.ZeroMamba` for ZeroMamba files, :class:`~zeromamba.models.VMamba`
        for VMamba release files, :class:`~zeromamba.models.Vim` for Vim release files.

    Raises:
        CheckpointError: unreadable file, a file that needs arbitrary unpickling, or parameters that
            do not match the architecture (each listed by name).
    """
    sd = read_official_state_dict(path)
    model: ZeroMamba | VMamba | Vim
    try:
        if is_vim_state_dict(sd):
            args = {**infer_vim_architecture(sd, int(model_args.get("stride", 16))), **model_args}
            if "img_size" not in args:
                raise CheckpointError(
                    f"{os.fspath(path)!r}: the position embedding covers {sd['pos_embed'].shape[1] - 1} patches, "
                    "not a square grid; pass img_size=(H, W) (and stride=...) as the model was trained"
                )
            model = Vim(**args)
            mapped = vim_filter_fn(sd, model)
        elif any(k.startswith(("VisionMamba.", "clf_head")) for k in sd):
            model = ZeroMamba(**{**infer_architecture(sd), **model_args})
            mapped = zeromamba_filter_fn(sd, model)
        else:
            model = VMamba(**{**infer_architecture(sd), **model_args})
            mapped = vmamba_filter_fn(sd, model)
    except (TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"bad model arguments for {os.fspath(path)!r}: {e}") from None
    load_state_dict_strict(model, mapped, repr(os.fspath(path)))
    return model.eval()
