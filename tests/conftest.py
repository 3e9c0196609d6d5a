"""Fixtures shared by the whole suite: parity fixture folders, a tiny predictor factory, an
offline guard, the loopback Hub server, the miniature xlsa17 dataset. Plain helpers are in
tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# Two test workers share the cores, each with PyTorch's OpenMP threads (and the command-line tests'
# subprocesses with theirs): threads that sleep while they wait, instead of spinning, leave the cores to
# the work. Only the waiting changes, not the numbers. Set before torch is imported; children inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import constants  # noqa: E402

from .fakehub import FakeHub  # noqa: E402
from .helpers import TINY, block_network, fixtures_root  # noqa: E402
from .mini_xlsa17 import build_mini_xlsa17  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets its share of the cores for PyTorch's own threads (2 workers
    on 2 cores: one thread each), so the workers do not oversubscribe the machine. Subprocesses that
    tests start are left as they are (they pick their own thread count, as a user's process does)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if os.environ.get("PYTEST_XDIST_WORKER") and workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped, with the reason shown, on machines without a GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic() -> Iterator[None]:
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def official_fixtures() -> Path:
    """``tests/fixtures/official``: the authors' ZeroMamba/VMamba parity fixtures."""
    return fixtures_root("official")


@pytest.fixture(scope="session")
def vim_fixtures() -> Path:
    """``tests/fixtures/vim``: the Vim authors' parity fixtures."""
    return fixtures_root("vim")


@pytest.fixture(scope="session")
def tiny_predictor() -> Callable[..., Any]:
    """A factory of small random predictors: ``tiny_predictor(class_names, attribute_names,
    input_size=32, seen=(0, 1), gamma=0.3, seed=0, **model_args)``. The model is a tiny ZeroMamba
    (seeded), the class-attribute matrix uniform in [0.05, 1) (seeded)."""
    from zeromamba.models import ZeroMamba
    from zeromamba.predictor import Predictor

    def make(
        class_names: Sequence[str],
        attribute_names: Sequence[str],
        input_size: int = 32,
        seen: Sequence[int] = (0, 1),
        gamma: float = 0.3,
        seed: int = 0,
        **model_args: Any,
    ) -> Predictor:
        torch.manual_seed(seed)
        args = dict(TINY, semantic_dim=8, **model_args)
        model = ZeroMamba(num_attributes=len(attribute_names), **args)
        rng = np.random.default_rng(seed)
        matrix = rng.uniform(0.05, 1.0, size=(len(class_names), len(attribute_names)))
        return Predictor(
            model,
            class_attributes=matrix,
            class_names=list(class_names),
            seen=list(seen),
            gamma=gamma,
            attribute_names=list(attribute_names),
            preprocess={"input_size": (3, input_size, input_size)},
        )

    return make


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline mode, and any socket connection fails loudly (see helpers.block_network)."""
    block_network(monkeypatch)


@pytest.fixture
def fakehub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """The loopback Hub (tests/fakehub.py), with huggingface_hub's endpoint and cache pointed at it."""
    server = FakeHub()
    # huggingface_hub reads these when imported; patch its constants (not its functions)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mini_xlsa17(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The miniature xlsa17 dataset (tests/mini_xlsa17.py), built once per session (read-only)."""
    return build_mini_xlsa17(tmp_path_factory.mktemp("mini"))
