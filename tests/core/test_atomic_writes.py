"""Atomic writes: a writer killed with SIGKILL leaves a temporary file whose name says
whose it is, and the next write in that folder removes it once its process is gone; a read-only
target is refused, not silently replaced; a replaced file keeps its permission bits."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zeromamba.errors import ReadOnlyTargetError, ZeroMambaError
from zeromamba.fileio import STALE_TEMPORARY_SECONDS, atomic_write, remove_stale_temporaries, write_json, write_text

from ..app.conftest import cli_env, zeromamba_command

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and permission bits are POSIX")

KILLED_WRITER = """
import sys, time
from zeromamba.fileio import atomic_write

def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"x" * 400_000)
        f.flush()
    print(tmp, flush=True)
    time.sleep(600)  # killed here, half-way through a write

atomic_write(sys.argv[1], write)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_killed_writer_leaves_a_named_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    tmp = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert tmp.name == f".results.csv.zeromamba-{proc.pid}-{tmp.name.rsplit('-', 1)[1]}"
    assert tmp.stat().st_size == 400_000 and not target.exists()
    # young: it might still be written by a process on another machine sharing the folder, so it is kept
    write_text(tmp_path / "other.txt", "x")
    assert tmp.exists()
    _age(tmp, STALE_TEMPORARY_SECONDS + 5)
    write_text(target, "class\n")
    assert not tmp.exists() and target.read_text() == "class\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "results.csv"]


def test_only_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    files = {
        "dead_old": tmp_path / f".model.safetensors.zeromamba-{dead}-0123abcd.tmp",
        "dead_old_legacy": tmp_path / f".config.json.{dead}.89abcdef.tmp",  # the name older versions wrote
        "dead_young": tmp_path / f".a.json.zeromamba-{dead}-0123abcd.tmp",
        "live_old": tmp_path / f".b.json.zeromamba-{live}-0123abcd.tmp",
        "not_ours": tmp_path / f".c.json.other-{dead}.tmp",
        "visible": tmp_path / f"d.json.zeromamba-{dead}-0123abcd.tmp",
    }
    for name, path in files.items():
        path.write_bytes(b"x")
        if name != "dead_young":
            _age(path, 3600)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([files["dead_old"], files["dead_old_legacy"]])
    assert all(p.exists() for k, p in files.items() if k not in ("dead_old", "dead_old_legacy"))


def test_a_read_only_target_is_refused_unless_the_caller_says_so(tmp_path: Path) -> None:
    target = tmp_path / "keep.json"
    target.write_text('{"mine": 1}\n')
    target.chmod(0o444)
    with pytest.raises(ReadOnlyTargetError) as e:
        write_json({"theirs": 2}, target)
    assert str(e.value) == (
        f"{target} is read-only (mode -r--r--r--): zeromamba does not replace a read-only file; make it writable "
        "(chmod u+w), remove it, or write to another path"
    )
    assert isinstance(e.value, ZeroMambaError) and isinstance(e.value, PermissionError)
    assert target.read_text() == '{"mine": 1}\n' and stat.S_IMODE(target.stat().st_mode) == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]  # nothing half-written beside it
    write_json({"theirs": 2}, target, replace_read_only=True)
    assert target.read_text() == '{\n  "theirs": 2\n}\n' and stat.S_IMODE(target.stat().st_mode) == 0o444


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "private.txt"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_classify_output_onto_a_read_only_file_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(image)
    out = tmp_path / "results.csv"
    out.write_text("precious\n")
    out.chmod(0o444)
    run = subprocess.run(
        [zeromamba_command(), "classify", str(image), "--format", "csv", "--output", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "hf"),
        timeout=300,
    )
    assert run.returncode != 0
    assert f"{out} is read-only (mode -r--r--r--): zeromamba does not replace a read-only file" in run.stderr
    assert "Traceback" not in run.stderr
    assert out.read_text() == "precious\n" and stat.S_IMODE(out.stat().st_mode) == 0o444
