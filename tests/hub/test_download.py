"""The real huggingface_hub client against a small Hub-compatible HTTP server on 127.0.0.1.

The server (:class:`FakeHub`) serves model folders the way the Hub's ``resolve`` endpoint does:
HEAD/GET ``/{repo_id}/resolve/{revision}/{filename}`` answering with ``X-Repo-Commit``, ``ETag``
and ``Content-Length``, and 404s carrying ``X-Error-Code: RepoNotFound / RevisionNotFound /
EntryNotFound``. Only huggingface_hub's configuration constants are patched (endpoint, cache,
offline flag); no huggingface_hub function is replaced. One test also runs in subprocesses with
the real environment variables (``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

import zeromamba
from zeromamba import zoo
from zeromamba.errors import CheckpointError, ConfigError, ModelNotAvailableError
from zeromamba.models import ZeroMamba
from zeromamba.predictor import Predictor

from ..fakehub import FakeHub

TINY = dict(
    num_attributes=6, semantic_dim=8, embed_dim=8, depths=(1, 1, 1, 1), fusion_hidden=16, num_imagenet_classes=10
)
PREPROCESS = dict(input_size=(3, 32, 32), interpolation="bilinear", crop_pct=1.0, crop_mode="squash")


@pytest.fixture
def make_predictor(tiny_predictor):  # noqa: ANN001, ANN201
    """``make_predictor(seed)``: the shared tiny predictor with this file's classes and heads."""

    def make(seed: int = 0) -> Predictor:
        classes, attributes = [f"class{i}" for i in range(5)], [f"attr{i}" for i in range(TINY["num_attributes"])]
        heads = {k: v for k, v in TINY.items() if k in ("fusion_hidden", "num_imagenet_classes")}
        return tiny_predictor(classes, attributes, input_size=32, seen=(0, 1, 2), gamma=0.3, seed=seed, **heads)

    return make


def images(n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (3, 40 + 4 * i, 36), dtype=torch.uint8, generator=g) for i in range(n)]


def ranking(predictor: Predictor) -> list[tuple[list[int], list[float]]]:
    return [(r.indices, r.scores) for r in predictor.classify(images(), top_k=None)]


def same_ranking(a: list, b: list) -> bool:
    return all(
        ia == ib and torch.allclose(torch.tensor(sa), torch.tensor(sb), atol=1e-5) for (ia, sa), (ib, sb) in zip(a, b)
    )


def test_download_load_classify_then_offline_then_server_stopped(
    make_predictor, fakehub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(zoo.NAMESPACE_ENV, "testorg")  # read at call time
    original = make_predictor()
    folder = original.save_pretrained(tmp_path / "cub")
    fakehub.publish("testorg/zeromamba-small-cub-gzsl", Path(folder))
    expected = ranking(original)

    # 1. online: the zoo name resolves to testorg/zeromamba-small-cub-gzsl and downloads
    p = zeromamba.from_pretrained("cub-gzsl")
    assert p.class_names == original.class_names and p.gamma == pytest.approx(0.3)
    assert p.seen.tolist() == [True, True, True, False, False]
    assert same_ranking(ranking(p), expected)
    assert any(path.endswith("/model.safetensors") for _, path in fakehub.requests)
    cache = Path(constants.HF_HUB_CACHE) / "models--testorg--zeromamba-small-cub-gzsl"
    assert (cache / "snapshots").is_dir()

    # saving back into the cache is refused (it would replace the cache's links)
    with pytest.raises(ConfigError, match="refusing to write into the Hugging Face cache"):
        p.save_pretrained(next((cache / "snapshots").iterdir()))

    # 2. HF_HUB_OFFLINE: from the cache, without a single request
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen_requests = len(fakehub.requests)
    p = zeromamba.from_pretrained("cub-gzsl")
    assert same_ranking(ranking(p), expected)
    assert len(fakehub.requests) == seen_requests

    # 3. the server is gone: offline and online mode both fall back to the cache
    fakehub.stop()
    p = zeromamba.from_pretrained("hf-hub:testorg/zeromamba-small-cub-gzsl")
    assert same_ranking(ranking(p), expected)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    p = zeromamba.from_pretrained("testorg/zeromamba-small-cub-gzsl")
    assert same_ranking(ranking(p), expected)

    # 4. a variant never cached, offline: a clear error naming the repository and the way out
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError) as e:
        zeromamba.from_pretrained("sun-gzsl")
    msg = str(e.value)
    assert "testorg/zeromamba-small-sun-gzsl" in msg and "HF_HUB_OFFLINE" in msg
    assert "zeromamba convert SUN_bestGZSL.pth --variant sun-gzsl" in msg


@pytest.mark.slow
def test_real_environment_variables_in_subprocesses(make_predictor, fakehub: FakeHub, tmp_path: Path) -> None:
    """HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE as a user sets them (read by huggingface_hub at import)."""
    original = make_predictor(seed=3)
    fakehub.publish("someone/tiny-zsl", Path(original.save_pretrained(tmp_path / "m")))
    script = (
        "import json, sys, torch, zeromamba\n"
        "g = torch.Generator().manual_seed(1)\n"
        "imgs = [torch.randint(0, 256, (3, 40 + 4 * i, 36), dtype=torch.uint8, generator=g) for i in range(3)]\n"
        "out = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        p = zeromamba.from_pretrained(name)\n"
        "        out.append([r.indices for r in p.classify(imgs, top_k=None)])\n"
        "    except zeromamba.ZeroMambaError as e:\n"
        "        out.append({'error': type(e).__name__, 'message': str(e)})\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=fakehub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1")

    def run(*names: str, **extra: str) -> list:
        out = subprocess.run(
            [sys.executable, "-c", script, *names], env={**env, **extra}, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    expected = [r.indices for r in original.classify(images(), top_k=None)]
    assert run("someone/tiny-zsl") == [expected]
    assert (tmp_path / "hf-home" / "hub" / "models--someone--tiny-zsl").is_dir()
    fakehub.stop()
    cached, err = run("someone/tiny-zsl", "someone/never-cached", HF_HUB_OFFLINE="1")
    assert cached == expected
    assert err["error"] == "ModelNotAvailableError" and "someone/never-cached" in err["message"]
    assert "HF_HUB_OFFLINE" in err["message"]


def test_nonexistent_repo_revision_and_file(make_predictor, fakehub: FakeHub, tmp_path: Path) -> None:
    folder = Path(make_predictor().save_pretrained(tmp_path / "m"))
    fakehub.publish("org/good", folder)
    with pytest.raises(ModelNotAvailableError, match="'org/missing' does not exist"):
        zeromamba.from_pretrained("org/missing")
    with pytest.raises(ModelNotAvailableError, match="revision 'v9' does not exist"):
        zeromamba.from_pretrained("org/good", revision="v9")
    with pytest.raises(ModelNotAvailableError, match="revision 'nope' does not exist"):
        zeromamba.from_pretrained("hf-hub:org/good@nope")
    # a repository without safetensors weights (e.g. only a pickle) is refused, nothing unpickled
    fakehub.publish("org/pickle-only", {"config.json": (folder / "config.json").read_bytes(), "model.bin": b"x"})
    with pytest.raises(ModelNotAvailableError, match="has no model.safetensors.*safetensors only"):
        zeromamba.from_pretrained("org/pickle-only")
    fakehub.publish("org/not-zeromamba", {"README.md": b"hello"})
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        zeromamba.from_pretrained("org/not-zeromamba")
    # after all that, the good repository still downloads
    assert zeromamba.from_pretrained("org/good").num_classes == 5


def test_corrupt_truncated_and_unknown_version_downloads_leave_the_cache_usable(
    make_predictor, fakehub: FakeHub, tmp_path: Path
) -> None:
    folder = Path(make_predictor().save_pretrained(tmp_path / "m"))
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    weights = files["model.safetensors"]

    fakehub.publish("org/m", {**files, "model.safetensors": weights[: len(weights) // 2]})
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        zeromamba.from_pretrained("org/m")

    fakehub.publish("org/m", {**files, "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"})
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        zeromamba.from_pretrained("org/m")

    config = json.loads(files["config.json"])
    fakehub.publish("org/m", {**files, "config.json": json.dumps({**config, "zeromamba_format": 2}).encode()})
    with pytest.raises(ConfigError, match="Upgrade zeromamba"):
        zeromamba.from_pretrained("org/m")

    # every blob in the cache is byte-identical to what the server sent: zeromamba wrote nothing there
    served = {
        hashlib.sha256(data).hexdigest()
        for repo in fakehub.repos.values()
        for c in repo["commits"].values()
        for data in c.values()
    }
    blobs = list((Path(constants.HF_HUB_CACHE) / "models--org--m" / "blobs").iterdir())
    assert blobs and all(hashlib.sha256(b.read_bytes()).hexdigest() in served for b in blobs)

    # the good files, published again, download and load
    good = fakehub.publish("org/m", files)
    p = zeromamba.from_pretrained("org/m")
    assert p.num_classes == 5
    assert same_ranking(ranking(p), ranking(make_predictor()))
    assert (Path(constants.HF_HUB_CACHE) / "models--org--m" / "refs" / "main").read_text() == good


def test_revisions_are_pinned(make_predictor, fakehub: FakeHub, tmp_path: Path) -> None:
    first = fakehub.publish("org/r", Path(make_predictor(seed=1).save_pretrained(tmp_path / "a")))
    fakehub.publish("org/r", Path(make_predictor(seed=2).save_pretrained(tmp_path / "b")))
    newest, old = zeromamba.from_pretrained("org/r"), zeromamba.from_pretrained("org/r", revision=first)
    assert same_ranking(ranking(newest), ranking(make_predictor(seed=2)))
    assert same_ranking(ranking(old), ranking(make_predictor(seed=1)))
    assert same_ranking(ranking(zeromamba.from_pretrained(f"hf-hub:org/r@{first}")), ranking(old))
    # an explicit cache folder and dtype
    p = zeromamba.from_pretrained("org/r", revision=first, cache_dir=tmp_path / "own-cache", dtype=torch.float64)
    assert (tmp_path / "own-cache" / "models--org--r" / "snapshots" / first / "model.safetensors").exists()
    assert next(p.model.parameters()).dtype == torch.float64


def test_timm_loads_tags_and_hf_hub_repos(make_predictor, fakehub: FakeHub, tmp_path: Path) -> None:
    import timm

    original = make_predictor()
    folder = Path(original.save_pretrained(tmp_path / "m"))
    # a pretrained tag: its hf_hub_id comes from the zoo (default namespace at import time)
    repo = zoo.get_variant("cub-gzsl").repo_id
    fakehub.publish(repo, folder)
    tag_model = timm.create_model("zeromamba_small.cub_gzsl", pretrained=True, **TINY)
    # hf-hub: architecture, model_args and pretrained_cfg come from config.json
    fakehub.publish("org/timm-zsl", folder)
    hub_model = timm.create_model("hf-hub:org/timm-zsl", pretrained=True)
    assert hub_model.pretrained_cfg["input_size"] == [3, 32, 32]
    ref = original.model.state_dict()
    for model in (tag_model, hub_model):
        assert isinstance(model, ZeroMamba)
        assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())

    # a backbone folder through the vmamba_tiny.in1k tag and hf-hub:
    torch.manual_seed(0)
    backbone = zeromamba.VMamba(embed_dim=8, depths=(1, 1, 1, 1), ssm_ratio=1.0, num_classes=1000)
    bfolder = zeromamba.save_pretrained(backbone, tmp_path / "backbone", variant="vmamba-tiny")
    fakehub.publish(zoo.get_variant("vmamba-tiny").repo_id, Path(bfolder))
    fakehub.publish("org/backbone", Path(bfolder))
    for m in (
        timm.create_model("vmamba_tiny.in1k", pretrained=True, embed_dim=8, depths=(1, 1, 1, 1)),
        timm.create_model("hf-hub:org/backbone", pretrained=True),
    ):
        assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in m.state_dict().items())
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(zeromamba.load_model("org/backbone")(x), backbone.eval()(x), atol=1e-6)
