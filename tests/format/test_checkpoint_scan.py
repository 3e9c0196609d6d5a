"""The pickle scan reads what torch.load reads, and nothing in a checkpoint runs, allocates or is built
before it has been checked.

Every hostile file here is written opcode by opcode or byte by byte (``hostile_pickles.py``). The
seven ways a scan used to be bypassed are first shown to run their payload under a plain unpickler,
then ``load_official`` must refuse each naming ``os.system``, leave the marker file uncreated, and never
hand the file to ``torch.load``.
"""

from __future__ import annotations

import io
import pickle
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import zeromamba
from zeromamba.classes import load_class_attributes
from zeromamba.convert import convert_official
from zeromamba.data.embeddings import load_attribute_embeddings
from zeromamba.errors import AttributeMatrixError, CheckpointError, DataError
from zeromamba.models import VMamba
from zeromamba.official import read_official_state_dict
from zeromamba.pickle_scan import scan_pickles

from .hostile_pickles import BYPASSES, evil, torch_zip
from .test_hostile_inputs import bounded


@pytest.fixture
def torch_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call of torch.load (a recording wrapper around the real one)."""
    calls: list[object] = []
    real = torch.load

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args[0] if args else kwargs.get("f"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    return calls


def test_every_bypass_runs_its_payload_under_a_plain_unpickler(tmp_path: Path) -> None:
    """The control: each payload is live (a plain ``pickle.load``, or ``torch.load(weights_only=False)``)."""
    for name, (build, reader) in BYPASSES.items():
        marker = tmp_path / f"{name}.ran"
        data = build(str(marker))
        try:
            if reader == "pickle":
                pickle.loads(data)
            else:
                torch.load(io.BytesIO(data), weights_only=False)
        except RuntimeError:  # torch's legacy reader checks the magic number after the first pickle ran
            pass
        assert marker.exists(), f"{name}: the payload did not run"


@pytest.mark.parametrize("name", list(BYPASSES))
def test_every_bypass_is_refused_naming_the_import(tmp_path: Path, name: str, torch_load_calls: list) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / f"{name}.pth"
    path.write_bytes(BYPASSES[name][0](str(marker)))
    with bounded(), pytest.raises(CheckpointError, match=r"asks the unpickler to import os\.system.*Nothing in it"):
        zeromamba.load_official(path)
    assert not marker.exists()
    assert torch_load_calls == []  # never handed to an unpickler


def test_the_scan_follows_the_unpickler_memo_and_stack() -> None:
    report = scan_pickles(BYPASSES["memoize-apart-from-memo"][0]("m"))
    assert list(report.imports) == ["os.system"] and list(report.calls) == ["os.system"] and not report.problems
    # every protocol's pickle of the same call: the import and the call, nothing else
    for proto in range(6):
        data = pickle.dumps({"x": [1, "s", (2.5, None)], "n": int}, protocol=proto)
        report = scan_pickles(data)
        assert not report.problems and list(report.imports) == ["builtins.int"], proto


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b".", "declares"),  # BINBYTES8 of 4 EB (13 bytes)
        (b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b".", "declares"),  # BYTEARRAY8 of 1 TB
        (b"\x80\x04\x8d" + (1 << 50).to_bytes(8, "little") + b".", "declares"),  # BINUNICODE8
        (b"\x80\x04\x95" + (1 << 60).to_bytes(8, "little") + b"N.", "FRAME declares"),
        (b"\x80\x02N\xff.", "unknown opcode 0xff"),
        (b"\x80\x02Kx", "ends before"),
        (b"\x80\x02r\xff\xff\xff\x7fN.", "memo index"),  # LONG_BINPUT 2**31: a 16 GB memo table in CPython
        (b"\x80\x02h\x05.", "never stored"),
        (b"\x80\x02(t0.", "no value"),
        (b"\x80\x02cargparse\nNamespace\nN}\x8c\x01x\x8c\x01ys\x86b.", "BUILD changes an imported object"),
    ],
)
def test_what_cannot_be_read_exactly_is_refused_unread(tmp_path: Path, data: bytes, problem: str) -> None:
    assert any(problem in p for p in scan_pickles(data).problems)
    path = tmp_path / "x.pth"
    path.write_bytes(data)
    with bounded(), pytest.raises(CheckpointError, match="cannot be read exactly"):
        zeromamba.load_official(path)


def test_calls_that_allocate_are_refused_before_allocation(tmp_path: Path, torch_load_calls: list) -> None:
    # 35 bytes: bytearray(3 * 10**9), protocol 2 (a plain unpickler would allocate 3 GB)
    payload = b"\x80\x02c__builtin__\nbytearray\n\x8a\x05\x00\x5e\xd0\xb2\x00\x85R."
    assert len(payload) == 35
    path = tmp_path / "bytearray.pth"
    path.write_bytes(payload)
    with bounded(), pytest.raises(CheckpointError, match=r"call builtins\.bytearray \(a bytearray"):
        zeromamba.load_official(path)
    # the same through torch's _rebuild_from_type_v2, which calls its first argument, inside a torch zip
    hidden = (  # _rebuild_from_type_v2(bytearray, torch.Tensor, (3 * 10**9,), {})
        b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n("
        b"c__builtin__\nbytearray\nctorch\nTensor\n\x8a\x05\x00\x5e\xd0\xb2\x00\x85}tR."
    )
    path.write_bytes(torch_zip(hidden))
    with bounded(), pytest.raises(CheckpointError, match=r"call builtins\.bytearray"):
        zeromamba.load_official(path)
    # a storage class called with a size: torch.FloatStorage(10**9)
    path.write_bytes(torch_zip(b"\x80\x02ctorch\nFloatStorage\nJ\x00\xca\x9a\x3b\x85R."))
    with bounded(), pytest.raises(CheckpointError, match=r"call torch\.FloatStorage"):
        zeromamba.load_official(path)
    assert torch_load_calls == []


def test_the_scan_and_the_legacy_path_are_bounded(tmp_path: Path) -> None:
    """100 MB of one-byte opcodes: refused at the opcode limit, in seconds (it took 579 s to scan)."""
    path = tmp_path / "long.pth"
    with open(path, "wb") as f:
        f.write(b"\x80\x02")
        for _ in range(100):
            f.write(b"N0" * (1 << 19))
    assert path.stat().st_size > 100_000_000
    with bounded(), pytest.raises(CheckpointError, match="opcodes"):
        zeromamba.load_official(path)


def _legacy_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_storages_larger_than_the_file_are_refused_before_allocation(tmp_path: Path, torch_load_calls: list) -> None:
    data = _legacy_bytes({"w": torch.arange(4.0)})
    forged = data.replace(b"K\x04N", b"J\x00\xca\x9a\x3bN", 1)  # numel 4 -> 10**9 (4 GB)
    assert forged != data
    path = tmp_path / "legacy.pth"
    path.write_bytes(forged)
    with bounded(), pytest.raises(CheckpointError, match=r"declares 4,000,000,000 bytes of tensor data but holds"):
        zeromamba.load_official(path)
    assert torch_load_calls == []
    # in a zip, torch compares the declared size with the stored one itself: still one CheckpointError
    buf = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    pkl = members.pop("archive/data.pkl").replace(b"K\x04t", b"J\x00\xca\x9a\x3bt", 1)
    path.write_bytes(torch_zip(pkl, extra={k: v for k, v in members.items() if "data/" in k}))
    with bounded(), pytest.raises(CheckpointError, match="record size|cannot read"):
        zeromamba.load_official(path)


@pytest.mark.parametrize("case", ["trailing bytes", "case duplicates", "two end records", "overlapping members"])
def test_ambiguous_zip_archives_are_refused(tmp_path: Path, case: str) -> None:
    harmless = pickle.dumps({"w": 1}, protocol=2)
    data = torch_zip(harmless)
    if case == "trailing bytes":
        data += b"\x00" * 8
    elif case == "case duplicates":
        data = torch_zip(harmless, extra={"archive/Data.pkl": harmless})
    elif case == "two end records":
        end = data[data.rindex(b"PK\x05\x06") :]
        data = data + end  # a second, complete end record
    else:  # the second member's header offset points into the first member
        cd = data.rindex(b"PK\x01\x02")  # the last member's directory entry
        offset = struct.unpack_from("<I", data, cd + 42)[0]
        data = data[: cd + 42] + struct.pack("<I", max(offset - 4, 1)) + data[cd + 46 :]
    path = tmp_path / "x.pth"
    path.write_bytes(data)
    with bounded(), pytest.raises(CheckpointError, match="could read differently|cannot read"):
        zeromamba.load_official(path)


def test_honest_checkpoints_of_every_kind_still_load(tmp_path: Path) -> None:
    """Parameters, bfloat16, shared storages, a Namespace, bytes (protocol 2 stores them via _codecs.encode),
    in the zip and in the legacy format."""
    import argparse

    base = torch.randn(6, 4)
    state = {"p": torch.nn.Parameter(torch.randn(3)), "b": torch.randn(5).bfloat16(), "v1": base[:3], "v2": base[3:]}
    for zip_format in (True, False):
        buf = io.BytesIO()
        extra = {"args": argparse.Namespace(lr=1e-3, tag=b"\x00bytes", betas=(0.9, 0.99)), "epoch": 3}
        torch.save({"model": state, **extra}, buf, _use_new_zipfile_serialization=zip_format)
        path = tmp_path / f"ok-{zip_format}.pth"
        path.write_bytes(buf.getvalue())
        loaded = read_official_state_dict(path)
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], v) for k, v in state.items())


def test_the_scanner_agrees_with_cpython_on_fuzzed_pickles() -> None:
    """Mutated pickles that the scan passes: every import and call CPython's unpickler makes was named."""

    class Stand(dict):
        made: list[str] = []
        name = ""

        def __new__(cls, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
            if cls.name:  # a class find_class made: the call of an import
                Stand.made.append(cls.name)
            return dict.__new__(Stand)

        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            pass

        def __call__(self, *args, **kwargs) -> Stand:  # noqa: ANN002, ANN003
            return Stand()

        def append(self, x: object) -> None:
            pass

        extend = add = append

    class Recording(pickle.Unpickler):
        found: list[str] = []

        def find_class(self, module: str, name: str) -> type:
            Recording.found.append(f"{module}.{name}")
            return type("G", (Stand,), {"name": f"{module}.{name}"})

        def persistent_load(self, pid: object) -> object:
            return Stand()

    import _compat_pickle

    def mapped(name: str) -> set[str]:
        m, _, n = name.partition(".")
        mm, nn = _compat_pickle.NAME_MAPPING.get((m, n), (m, n))
        return {name, f"{_compat_pickle.IMPORT_MAPPING.get(mm, mm)}.{nn}"}

    objects = [{"a": [1, 2.5, "x", b"y", (1, 2)], "o": int, "s": {3}}, [print, len, range(3), "é" * 3, 2**100]]
    corpus = [pickle.dumps(o, protocol=p) for o in objects for p in range(6)]
    snippets = [b"(", b".", b"0", b"1", b"2", b"t", b"R", b"\x94", b"\x93", b"q\x01", b"h\x01", b"p1\n", b"g1\n",
                b"I0x1\n", b"\x8c\x02os", b"\x8c\x06system", b"cos\nsystem\n", b"N", b")", b"]", b"a", b"s", b"b",
                b"\x81", b"\x85", b"\x80\x04", b"Vos\n", b"S'os'\n"]  # fmt: skip
    rng = random.Random(0)
    passed = 0
    for _ in range(3000):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            r = rng.random()
            if r < 0.5:
                data[i:i] = rng.choice(snippets)
            elif r < 0.7:
                del data[i : i + rng.randint(1, 3)]
            else:
                data[i] = rng.randrange(256)
        report = scan_pickles(bytes(data))
        if report.problems:
            continue  # refused: never unpickled
        passed += 1
        Recording.found, Stand.made = [], []
        try:
            Recording(io.BytesIO(bytes(data)), encoding="utf-8").load()
        except Exception:  # noqa: BLE001 - a mutated pickle may fail later; what it imported until then counts
            pass
        for name in Recording.found:
            assert mapped(name) & set(report.imports), (name, bytes(data))
        for name in Stand.made:
            assert mapped(name) & set(report.calls), (name, bytes(data))
    assert passed > 300


# --- load_official / convert / the release reader: the architecture and the tensors ---------------


def _vmamba_state() -> dict[str, torch.Tensor]:
    return VMamba(num_classes=4, embed_dim=8, depths=(1, 1)).state_dict()


def _save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    buf = io.BytesIO()
    torch.save({"model": state}, buf)
    path.write_bytes(buf.getvalue())
    return path


def test_a_stride_0_weight_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    state = _vmamba_state()
    width = state["classifier.head.weight"].shape[1]
    state["classifier.head.weight"] = torch.zeros(1, width).expand(50_000_000, width)  # 1.6 GB as a model head
    path = _save(tmp_path / "expanded.pth", state)
    assert path.stat().st_size < 1 << 20
    with bounded(), pytest.raises(CheckpointError, match=r"classifier\.head\.weight.*stride 0"):
        zeromamba.load_official(path)
    with bounded(), pytest.raises(CheckpointError, match="stride 0"):
        convert_official(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path: Path) -> None:
    state = _vmamba_state()
    state["classifier.head.weight"] = torch.as_strided(torch.zeros(100_100), (100_000, 100), (1, 1))  # overlapping rows
    with bounded(), pytest.raises(CheckpointError, match=r"storage holds"):
        zeromamba.load_official(_save(tmp_path / "overlap.pth", state))


def test_a_meta_tensor_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = _save(tmp_path / "meta.pth", {"w": torch.empty(10**6, 10**6, device="meta")})
    with bounded(), pytest.raises(CheckpointError, match=r"meta device"):
        zeromamba.load_official(path)
    from zeromamba.format.torch_checkpoint import check_tensors

    with pytest.raises(CheckpointError, match=r"'w' is on the meta device"):
        check_tensors({"w": torch.empty(3, device="meta")}, "a state dict")


def _shapes_only(embed_dim: int, depths: tuple[int, ...], d_state: int) -> dict[str, torch.Tensor]:
    """Just the tensors whose shapes the architecture is read from (small ones), plus block names."""
    one = torch.zeros(1)
    state = {
        "patch_embed.5.weight": torch.zeros(embed_dim),
        "layers.0.blocks.0.op.A_logs": torch.zeros(1, d_state),
        "layers.0.blocks.0.op.in_proj.weight": torch.zeros(2 * embed_dim, 1),
        "layers.0.blocks.0.op.dt_projs_weight": torch.zeros(1, 1, 1),
        "classifier.head.weight": torch.zeros(10, 1),
        "layers.0.blocks.0.mlp.fc1.weight": torch.zeros(4 * embed_dim, 1),
    }
    for stage, depth in enumerate(depths):
        for block in range(depth):
            state[f"layers.{stage}.blocks.{block}.norm.weight"] = one
    return state


@pytest.mark.parametrize(
    "args, message",
    [
        ((4096, (64, 64), 1), r"VMamba of at least [\d,]+ parameters"),  # ~100 GB of float32 from a 1 MB file
        ((8, (1, 1), 300), r"d_state = 300 is outside the allowed range \[1, 256\]"),
        ((8, (1,) * 9, 1), r"depths must be a list of 1 to 8 integers"),
    ],
)
def test_the_architecture_read_off_shapes_gets_the_folder_limits(tmp_path: Path, args: tuple, message: str) -> None:
    path = _save(tmp_path / "shapes.pth", _shapes_only(*args))
    with bounded(), pytest.raises(CheckpointError, match=message):
        zeromamba.load_official(path)


def test_a_state_dict_that_does_not_fit_is_refused_before_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _vmamba_state()
    del state["classifier.head.bias"]
    built: list[str] = []
    real_init = VMamba.__init__

    def recording_init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        built.append(torch.empty(0).device.type)  # "meta" inside the meta build
        return real_init(self, *args, **kwargs)

    monkeypatch.setattr(VMamba, "__init__", recording_init)
    with pytest.raises(CheckpointError, match=r"(?s)does not fit VMamba.*missing \(1\): classifier\.head\.bias"):
        zeromamba.load_official(_save(tmp_path / "partial.pth", state))
    assert built == ["meta"]  # only the meta model was built


@pytest.mark.parametrize("reader", ["class attributes", "attribute embeddings"])
def test_an_npy_header_is_checked_before_numpy_allocates(tmp_path: Path, reader: str) -> None:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n" + b"\x00" * 8
    assert len(data) == 136
    path = tmp_path / "huge.npy"
    path.write_bytes(data)
    error = AttributeMatrixError if reader == "class attributes" else DataError
    with bounded(), pytest.raises(error, match=r"declares a 1000000x1000000 float64 array \(8,000,000,000,000 bytes\)"):
        if reader == "class attributes":
            load_class_attributes(path)
        else:
            load_attribute_embeddings(path)
    np.save(path, np.ones((3, 4), dtype=object), allow_pickle=True)
    with pytest.raises(error, match="not numbers"):
        load_class_attributes(path) if reader == "class attributes" else load_attribute_embeddings(path)
    np.save(path, np.ones((3, 4)))
    path.write_bytes(path.read_bytes()[:-8])  # truncated
    with pytest.raises(error, match="88 bytes follow it"):
        load_class_attributes(path) if reader == "class attributes" else load_attribute_embeddings(path)


def test_the_payloads_are_not_what_honest_files_look_like() -> None:
    """A sanity check of the builders: the call is the only import in the plain payload."""
    assert list(scan_pickles(evil("m")).imports) == ["os.system"]
