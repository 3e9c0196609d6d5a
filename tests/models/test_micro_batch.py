"""CPU inference batches split into micro-batches: when, how many, and the same answers."""

from __future__ import annotations

import pytest
import torch

import zeromamba
from zeromamba.models import ZeroMamba
from zeromamba.models._micro_batch import MMAP_THRESHOLD_BYTES, micro_batch_count


@pytest.mark.parametrize(
    ("batch", "per_sample", "budget", "expected"),
    [
        (8, 19_267_584, MMAP_THRESHOLD_BYTES, 8),  # ZeroMamba-S at 448: one image at a time
        (8, 14_155_776, MMAP_THRESHOLD_BYTES, 4),  # at 384: two at a time
        (8, 4_816_896, MMAP_THRESHOLD_BYTES, 2),  # at 224: six fit, so two halves of four
        (5, 4_816_896, MMAP_THRESHOLD_BYTES, 1),  # the whole batch fits
        (1, 10**9, MMAP_THRESHOLD_BYTES, 1),  # one image is never split
        (8, 10**9, MMAP_THRESHOLD_BYTES, 8),  # never more than one per image
        (8, 19_267_584, None, 1),  # splitting switched off
        (8, 19_267_584, 0, 1),
    ],
)
def test_micro_batch_count(batch: int, per_sample: int, budget: int | None, expected: int) -> None:
    assert micro_batch_count(batch, per_sample, budget) == expected


def test_zeromamba_small_at_448_runs_one_image_at_a_time() -> None:
    """The widest first-stage tensor of ZeroMamba-S (its MLP's 384 hidden channels on 112 x 112
    positions, float32) is 19 MB per image: two images would cross the 32 MiB threshold."""
    model = zeromamba.create_model("zeromamba_small", num_attributes=5, semantic_dim=7, device="meta")
    x = torch.empty(8, 3, 448, 448, device="meta")
    assert model.backbone._stage1_bytes(x) == 112 * 112 * 384 * 4
    assert micro_batch_count(8, model.backbone._stage1_bytes(x), model.backbone.cpu_micro_batch_bytes) == 8
    # in bfloat16 the MLP's hidden layer halves; the scan's float32 output (192 channels) is as wide
    half = torch.empty(8, 3, 448, 448, device="meta", dtype=torch.bfloat16)
    assert model.backbone._stage1_bytes(half) == 112 * 112 * 192 * 4


def _counting_stem(model: ZeroMamba) -> list[int]:
    """The batch size of every call of the backbone's stem, as the model runs."""
    seen: list[int] = []
    model.backbone.patch_embed.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    return seen


@pytest.fixture()
def nano() -> ZeroMamba:
    torch.manual_seed(0)
    return zeromamba.create_model("zeromamba_nano", num_attributes=6, semantic_dim=5).eval()


def test_split_batch_gives_the_whole_batch_answer(nano: ZeroMamba) -> None:
    x = torch.randn(5, 3, 64, 64)
    seen = _counting_stem(nano)
    nano.backbone.cpu_micro_batch_bytes = 1  # every image on its own
    with torch.inference_mode():
        split = nano(x)
    assert seen == [1, 1, 1, 1, 1]
    nano.backbone.cpu_micro_batch_bytes = None
    with torch.inference_mode():
        whole = nano(x)
    assert seen[5:] == [5]
    for name, value in whole.to_dict().items():
        torch.testing.assert_close(getattr(split, name), value, rtol=1e-5, atol=1e-5, msg=name)  # float32 rounding


def test_budget_sets_the_micro_batch_size(nano: ZeroMamba) -> None:
    x = torch.randn(5, 3, 64, 64)
    per_image = nano.backbone._stage1_bytes(x)
    nano.backbone.cpu_micro_batch_bytes = 2 * per_image
    seen = _counting_stem(nano)
    with torch.no_grad():
        nano(x)
    assert seen == [2, 2, 1]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:`torch.jit.trace:FutureWarning")
def test_batches_stay_whole_under_autograd_and_tracing(nano: ZeroMamba) -> None:
    """Training keeps its batch (the activations are kept for backward anyway), and a traced graph
    must not have the batch unrolled into it."""
    nano.backbone.cpu_micro_batch_bytes = 1
    x = torch.randn(3, 3, 64, 64)
    seen = _counting_stem(nano)
    nano(x).attributes.sum()
    assert seen == [3]

    class Attributes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nano

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.model(t).attributes

    with torch.no_grad():
        traced = torch.jit.trace(Attributes(), x, check_trace=False)
    assert seen[1:] == [3]
    with torch.no_grad():
        torch.testing.assert_close(traced(torch.randn(4, 3, 64, 64)).shape, torch.Size([4, 6]))
