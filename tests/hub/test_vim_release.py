"""The Vim releases from the authors' own Hub repositories, against the loopback Hub: found by
listing the repository, read safely once, cached as safetensors, loaded exactly, then offline."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants

import zeromamba
from zeromamba.architectures import VIM_ARCHITECTURES
from zeromamba.errors import CheckpointError, ModelNotAvailableError
from zeromamba.hub.release import choose_release_file, release_cache_dir
from zeromamba.images import prepare_image
from zeromamba.models import Vim
from zeromamba.zoo import get_variant

from ..fakehub import FakeHub
from ..helpers import block_network, vim_release

REPO = "hustvl/Vim-tiny-midclstok"
RELEASE = "vim_t_midclstok_76p1acc.pth"
FINETUNED = "vim_t_midclstok_ft_78p3acc.pth"


@pytest.fixture
def zm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh zeromamba cache (the release copies live under it)."""
    monkeypatch.setenv("ZEROMAMBA_CACHE_DIR", str(tmp_path / "zm-cache"))
    return tmp_path / "zm-cache"


@pytest.fixture(scope="module")
def release() -> tuple[dict[str, torch.Tensor], bytes]:
    """A random Vim-tiny and its release file as the authors' trainer writes it."""
    return vim_release("tiny")


def _publish(hub: FakeHub, files: dict[str, bytes]) -> str:
    commit = get_variant("vim-tiny").revision
    assert commit is not None  # vim-tiny is pinned to a known commit of the authors' repository
    listing = {".gitattributes": b"*.pth filter=lfs\n", "README.md": b"# Vim-tiny\n", **files}
    return hub.publish(REPO, listing, commit=commit)


def _gets(hub: FakeHub, name: str) -> int:
    return sum(1 for method, path in hub.requests if method == "GET" and path.endswith("/" + name))


def test_load_model_reads_the_release_once_then_from_the_safetensors_copy_then_offline(
    fakehub: FakeHub, zm_cache: Path, release, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, blob = release
    commit = _publish(fakehub, {RELEASE: blob, FINETUNED: b"the fine-tuned file: listed, never downloaded"})

    model = zeromamba.load_model("vim-tiny")
    assert isinstance(model, Vim) and not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert any(path.endswith(f"/api/models/{REPO}/revision/{commit}") for _, path in fakehub.requests)
    assert _gets(fakehub, RELEASE) == 1 and _gets(fakehub, FINETUNED) == 0
    copy = release_cache_dir() / "hustvl--Vim-tiny-midclstok" / commit / "model.safetensors"
    assert copy.is_file() and zm_cache in copy.parents

    x = torch.randn(1, 3, 224, 224)
    reference = Vim(**VIM_ARCHITECTURES["vim_tiny"])
    reference.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))

    def no_unpickling(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a later load unpickled a file")

    monkeypatch.setattr(torch, "load", no_unpickling)
    again = zeromamba.load_model("hf-hub:" + REPO)  # the repository id names the same variant
    assert all(torch.equal(again.state_dict()[k], state[k]) for k in state)
    assert _gets(fakehub, RELEASE) == 1

    block_network(monkeypatch)
    offline = zeromamba.load_model("vim-tiny")
    assert all(torch.equal(offline.state_dict()[k], state[k]) for k in state)
    predictor = zeromamba.from_pretrained("vim-tiny")  # an ImageNet predictor ranking the 1000 logits
    assert predictor.preprocess["input_size"] == (3, 224, 224) and predictor.preprocess["crop_pct"] == 0.875
    image = torch.randint(0, 256, (3, 240, 260), dtype=torch.uint8)
    with torch.no_grad():
        x = prepare_image(image, predictor.preprocess)[0].tensor[None]
        expected = reference(x).topk(3).indices[0].tolist()
    assert predictor.classify(image, top_k=3).indices == expected


def test_branch_revision_is_recorded_for_offline_use(
    fakehub: FakeHub, zm_cache: Path, release, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, blob = release
    commit = _publish(fakehub, {RELEASE: blob})
    with pytest.raises(ModelNotAvailableError, match="never loaded online"):
        zeromamba.load_model("vim-tiny", revision="main", local_files_only=True)
    zeromamba.load_model("vim-tiny", revision="main")
    assert (release_cache_dir() / "hustvl--Vim-tiny-midclstok" / "refs" / "main").read_text().strip() == commit
    fakehub.stop()
    block_network(monkeypatch)
    model = zeromamba.load_model("vim-tiny", revision="main")
    assert torch.equal(model.state_dict()["pos_embed"], state["pos_embed"])
    model = zeromamba.load_model(f"hf-hub:{REPO}@main")  # the revision in the name, as for any repository
    assert torch.equal(model.state_dict()["pos_embed"], state["pos_embed"])


class _CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: it would create ``path``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def _malicious(path: Path, state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": state, "args": _CreatesAFile(path)}, buf)
    return buf.getvalue()


def test_a_release_that_would_run_code_is_refused_and_runs_nothing(
    fakehub: FakeHub, zm_cache: Path, release, tmp_path: Path
) -> None:
    state, _ = release
    # the payload is real: unpickled without the allowlist, it creates its file
    proof = tmp_path / "proof"
    torch.load(io.BytesIO(_malicious(proof, {})), weights_only=False)
    assert proof.exists()

    marker = tmp_path / "pwned"
    _publish(fakehub, {RELEASE: _malicious(marker, state)})
    with pytest.raises(CheckpointError, match="refuses"):
        zeromamba.load_model("vim-tiny")
    assert not marker.exists()
    assert not list(release_cache_dir().glob("*/*/model.safetensors"))  # nothing cached


def test_a_release_with_a_stride_0_tensor_is_refused_and_nothing_is_cached(
    fakehub: FakeHub, zm_cache: Path, release
) -> None:
    state, _ = release
    forged = dict(state)
    forged["head.weight"] = state["head.weight"][:1].expand_as(state["head.weight"])  # one row, seen 1000 times
    buf = io.BytesIO()
    torch.save({"model": forged, "epoch": 1}, buf)
    _publish(fakehub, {RELEASE: buf.getvalue()})
    with pytest.raises(CheckpointError, match=r"head\.weight.*stride 0"):
        zeromamba.load_model("vim-tiny")
    assert not list(release_cache_dir().glob("*/*/model.safetensors"))


def test_timm_pretrained_tag_loads_the_release_and_resizes_positions(fakehub: FakeHub, zm_cache: Path, release) -> None:
    state, blob = release
    _publish(fakehub, {RELEASE: blob})
    model = timm.create_model("vim_tiny.in1k", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    assert model.pretrained_cfg["input_size"] == (3, 224, 224) and model.pretrained_cfg["crop_pct"] == 0.875
    bigger = timm.create_model("vim_tiny.in1k", pretrained=True, img_size=256, num_classes=10)
    assert bigger.pos_embed.shape == (1, 16 * 16 + 1, 192) and bigger.head.out_features == 10
    assert torch.equal(bigger.pos_embed[:, 128], state["pos_embed"][:, 98])  # the class token's entry is kept
    assert _gets(fakehub, RELEASE) == 1  # the second model read the safetensors copy


def test_missing_repository_and_unreachable_hub(
    fakehub: FakeHub, zm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        zeromamba.load_model("vim-small")  # nothing published under hustvl/Vim-small-midclstok
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelNotAvailableError, match="cannot reach"):
        zeromamba.load_model("vim-base")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["README.md", "vim_s_midclstok_80p5acc.pth", "vim_s_midclstok_ft_81p6acc.pth"], "vim_s_midclstok_80p5acc.pth"),
        (["weights.bin", "notes.txt"], "weights.bin"),
        (["README.md"], None),
        (["a.pth", "b.pth"], None),
        (["sub/a.pth", "x_ft.pth"], None),
    ],
)
def test_choose_release_file(files: list[str], expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ModelNotAvailableError, match="candidate|no checkpoint"):
            choose_release_file(files, "owner/repo")
    else:
        assert choose_release_file(files, "owner/repo") == expected
