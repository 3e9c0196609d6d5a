"""Before touching the Hub: can these weights be loaded now, and what to say when they cannot.

Both ways to pretrained weights go through here, zeromamba's own (:mod:`zeromamba.hub.download`)
and timm's ``pretrained=True`` (the model entry points), so both fail the same way and fast:

* a zoo variant the zoo knows is not published (:meth:`~zeromamba.zoo.PretrainedVariant.known_unpublished`)
  and not cached fails at once, without a network request, with the ``zeromamba convert`` steps;
* any other repository is asked for once, with a timeout (argument ``timeout``, else the
  environment variable ``ZEROMAMBA_HUB_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` seconds), instead of
  huggingface_hub's retries with back-off;
* huggingface_hub's errors become :class:`~zeromamba.errors.ModelNotAvailableError` saying what to do.

A leaf: it imports huggingface_hub (inside functions) and the zoo, nothing heavier.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, ModelNotAvailableError, UnknownModelError, ZeroMambaError
from .network_failure import TIMEOUT, classify_failure, describe_failure
from .version import __version__
from .zoo import PretrainedVariant, convert_instructions, get_variant, list_pretrained

__all__ = [
    "REPO_ID",
    "DEFAULT_TIMEOUT",
    "HubUnreachable",
    "TIMEOUT_ENV",
    "hub_error",
    "hub_timeout",
    "check_model_name",
    "offline",
    "parse_source",
    "probe",
    "require_weights",
    "unpublished_error",
    "unreachable_error",
]

#: a Hub repository id, ``owner/name``
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: seconds to wait for the Hub's first answer when nothing else is set
DEFAULT_TIMEOUT = 10.0
TIMEOUT_ENV = "ZEROMAMBA_HUB_TIMEOUT"


def hub_timeout(timeout: float | None = None) -> float:
    """The Hub timeout in seconds: ``timeout`` when given, else ``$ZEROMAMBA_HUB_TIMEOUT``, else
    :data:`DEFAULT_TIMEOUT`.

    Raises:
        ConfigError: not a positive number.
    """
    where = "timeout"
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT
        where, timeout = TIMEOUT_ENV, raw  # type: ignore[assignment]
    try:
        value = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number of seconds, got {timeout!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of seconds, got {timeout!r}")
    return value


def offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE``), read now."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def unpublished_error(variant: PretrainedVariant) -> ModelNotAvailableError:
    """The error for a zoo variant that is known not to be on the Hub."""
    how = convert_instructions(variant)
    return ModelNotAvailableError(
        f"{variant.name!r} ({variant.repo_id}) is not published on the Hub yet, and it is not in the local cache. "
        f"{how[0].upper()}{how[1:]} `zeromamba list` shows the models that load now."
    )


def hub_error(
    e: BaseException, repo_id: str, revision: str | None, filename: str, variant: PretrainedVariant | None
) -> ZeroMambaError:
    """A huggingface_hub download error as a :class:`ModelNotAvailableError` saying what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    where = constants.ENDPOINT
    convert = convert_instructions(variant)
    if isinstance(e, RevisionNotFoundError):
        return ModelNotAvailableError(
            f"revision {rev!r} does not exist in the Hub repository {repo_id!r} ({where}). "
            "Check the branch, tag or commit, or leave revision unset for 'main'."
        )
    if isinstance(e, RepositoryNotFoundError):
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} does not exist at {where} (or it is private or gated: log in with "
            f"`hf auth login` or pass a token). Known zoo variants: {', '.join(v.name for v in list_pretrained())}."
        )
    if isinstance(e, RemoteEntryNotFoundError):
        extra = " zeromamba loads safetensors only, never pickled weights." if filename.endswith(".safetensors") else ""
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} (revision {rev!r}) has no {filename}: it is not a zeromamba model folder."
            f"{extra} {convert[0].upper() + convert[1:]}"
        )
    if isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        offline = constants.HF_HUB_OFFLINE
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else f"the Hub ({where}) cannot be reached"
        fix = "unset HF_HUB_OFFLINE" if offline else "connect to the network"
        return ModelNotAvailableError(
            f"cannot get {filename} of {repo_id!r} (revision {rev!r}): {why}, and it is not in the local Hugging "
            f"Face cache. Either {fix} and load it once to cache it, or: {convert}"
        )
    if isinstance(e, HfHubHTTPError):
        return ModelNotAvailableError(f"downloading {filename} of {repo_id!r} (revision {rev!r}) failed: {e}")
    return ModelNotAvailableError(f"cannot download {filename} of {repo_id!r} (revision {rev!r}): {e}")


@dataclass(frozen=True)
class HubUnreachable:
    """The Hub could not be asked: the HTTP client's ``error`` and how long the attempt took."""

    error: Exception
    elapsed: float
    timeout: float


def probe(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    timeout: float | None = None,
    variant: PretrainedVariant | None = None,
) -> HubUnreachable | None:
    """Ask the Hub once, within ``timeout`` seconds, for ``filename`` of ``repo_id`` (no retries).

    Returns ``None`` when it is there, or what went wrong when the Hub could not be asked (no
    name resolution, refused, no route, timed out; see :func:`unreachable_error`).

    Raises:
        ModelNotAvailableError: the Hub answered that the repository, revision or file does not exist.
        UnknownModelError: ``repo_id`` is not a valid repository id.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    seconds = hub_timeout(timeout)
    start = time.perf_counter()
    try:
        url = hf_hub_url(repo_id, filename, revision=revision)
        get_hf_file_metadata(url, token=token, timeout=seconds, library_name="zeromamba", library_version=__version__)
    except HFValidationError as e:
        raise UnknownModelError(f"{repo_id!r} is not a valid Hub repository id: {e}") from None
    except HfHubHTTPError as e:
        raise hub_error(e, repo_id, revision, filename, variant) from None
    except Exception as e:  # noqa: BLE001 - the HTTP client's connection and timeout errors differ by version
        return HubUnreachable(e, time.perf_counter() - start, seconds)
    return None


def unreachable_error(
    failure: HubUnreachable, repo_id: str, timeout: float | None, variant: PretrainedVariant | None
) -> ModelNotAvailableError:
    """The error for a Hub that could not be asked (``failure`` from :func:`probe`) with nothing
    cached: what happened (the name did not resolve, refused, no route, timed out) and after how long."""
    from huggingface_hub import constants

    host = urlsplit(constants.ENDPOINT).netloc or constants.ENDPOINT
    what = describe_failure(failure.error, host, failure.elapsed, failure.timeout)
    if classify_failure(failure.error) == TIMEOUT:
        fix = f"Connect to the network, wait longer (timeout=SECONDS or {TIMEOUT_ENV}=SECONDS), or"
    else:  # waiting longer would not help
        fix = "Connect to the network (or check HF_ENDPOINT and the proxy settings), or"
    return ModelNotAvailableError(
        f"cannot reach the Hub ({constants.ENDPOINT}) for {repo_id!r}: {what}; and it is not in the local cache. "
        f"{fix}: {convert_instructions(variant)}"
    )


def require_weights(
    variant: PretrainedVariant,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    timeout: float | None = None,
) -> Path | None:
    """Make sure a zoo Hub variant's weights can be fetched before a download is tried: cached, or
    the Hub answers within the timeout. Shipped variants always pass.

    Returns:
        The cached ``model.safetensors`` of a variant known not to be published (there is nothing
        to ask the Hub), else ``None``.

    Raises:
        ModelNotAvailableError: known not to be published (at once, no request), offline and not
            cached, or the Hub does not answer in time / has no such repository.
    """
    if variant.is_local:
        return None
    cached = variant.cached_folder(cache_dir)
    unpublished = variant.known_unpublished()
    if cached is not None:
        return cached / "model.safetensors" if unpublished else None
    if unpublished:
        raise unpublished_error(variant)
    if offline():
        from huggingface_hub.errors import OfflineModeIsEnabled

        raise hub_error(
            OfflineModeIsEnabled("offline"), variant.repo_id, variant.revision, "model.safetensors", variant
        )
    failure = probe(
        variant.repo_id, "model.safetensors", revision=variant.revision, token=token, timeout=timeout, variant=variant
    )
    if failure is not None:
        raise unreachable_error(failure, variant.repo_id, timeout, variant)
    return None


def _looks_like_path(name: str) -> bool:
    """A name only a folder can mean: ``./x``, ``/x``, ``~/x``, ``x/``, ``a/b/c``, ``C:\\x``."""
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.endswith(("/", "\\"))
        or name.count("/") > 1
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
    )


def parse_source(name: str) -> tuple[str, str | None, str | None]:
    """``(kind, repo_or_path, revision)`` with kind ``dir``, ``repo`` or ``zoo``.

    Raises:
        ModelNotAvailableError: a name that can only be a folder, and there is none.
    """
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        repo = name.split(":", 1)[1]
        rev = None
        if "@" in repo:
            repo, rev = repo.split("@", 1)
        return "repo", repo, rev
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return "dir", path, None
    if _looks_like_path(name) and not os.path.exists(path):
        stem = name.strip("/\\")
        hint = ""
        try:
            variant = get_variant(stem)
            hint = f" To load the zoo variant, drop the slash: {variant.name!r}."
        except UnknownModelError:
            pass
        raise ModelNotAvailableError(
            f"model folder not found: {name!r} (from {os.getcwd()}). Give the folder written by save_pretrained or "
            f"`zeromamba convert` (with config.json and model.safetensors), a zoo name (`zeromamba list`) or a Hub "
            f"repository 'owner/name'.{hint}"
        )
    return "zoo", name, None


def check_model_name(name: str | os.PathLike) -> None:
    """The errors a model name can have that need neither torch nor the network, at once: a folder
    that does not exist, a name that is neither a zoo variant nor a repository id, and a zoo
    variant known not to be published and not cached (``zeromamba classify --model`` checks its
    argument with this before loading anything).

    Raises:
        ModelNotAvailableError, UnknownModelError: as :func:`~zeromamba.hub.resolve_model_dir` would.
    """
    kind, target, _ = parse_source(os.fspath(name))
    if kind != "zoo" or target is None:
        return
    try:
        variant = get_variant(target)
    except UnknownModelError:
        if REPO_ID.match(target) or os.path.exists(target):
            return
        raise
    if variant.known_unpublished() and variant.cached_folder() is None:
        raise unpublished_error(variant)
