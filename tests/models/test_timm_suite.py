"""timm's own model tests on our architectures: ``tests/test_models.py`` of the installed timm's
source distribution, unmodified, with ``tests/timm_suite/conftest_zeromamba.py`` as a plugin (it
imports zeromamba and keeps the parametrised model names to ours; see its docstring).

The sdist is fetched from PyPI with ``pip download`` (once: it is kept in the user cache) or taken
from ``ZEROMAMBA_TIMM_SDIST`` (a ``.tar.gz`` or an unpacked folder). Without the network the test is
skipped, saying why. What the suite skips and why is listed in ``docs/timm-suite.md``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import timm

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "tests" / "timm_suite"

#: families (test functions) that must have at least one passing case on our architectures
MUST_PASS = (
    "test_model_forward",
    "test_model_backward",
    "test_model_default_cfgs",
    "test_model_default_cfgs_non_std",
    "test_model_forward_features",
    "test_model_forward_intermediates",
    "test_model_forward_intermediates_features",
    "test_prune_intermediate_layers_contract",
    "test_model_forward_fx",
    "test_model_backward_fx",
    "test_model_features_pretrained",  # the shipped zeromamba_nano_s8.shapes_zsl
)

#: the suite's own skip reasons we accept (besides the plugin's: "needs the network...", "slow: ...")
SUITE_SKIPS = ("Fixed input size model > limit.",)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zeromamba-tests" / "timm-sdist"


def _sdist(version: str) -> Path:
    """The sdist of timm ``version``: ``ZEROMAMBA_TIMM_SDIST``, the cached download, or a new one."""
    given = os.environ.get("ZEROMAMBA_TIMM_SDIST")
    if given:
        return Path(given)
    folder = _cache_dir()
    archive = folder / f"timm-{version}.tar.gz"
    if archive.is_file():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"timm=={version}"]
    try:
        res = subprocess.run([*cmd, "-d", str(folder)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip(f"downloading timm {version}'s sdist from PyPI took over 10 minutes (no network?)")
    if res.returncode != 0 or not archive.is_file():
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        pytest.skip(f"could not download timm {version}'s sdist from PyPI (no network?): {' | '.join(tail)}")
    return archive


@pytest.fixture(scope="session")
def timm_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the sdist's ``tests/`` (test_models.py, its conftest) and its pyproject.toml,
    without timm's source next to it (the installed timm is the one under test)."""
    version = timm.__version__
    source = _sdist(version)
    out = tmp_path_factory.mktemp("timm-tests")
    if source.is_dir():
        root = source
    else:
        with tarfile.open(source) as tar:
            wanted = [
                m
                for m in tar.getmembers()
                if m.name.split("/", 1)[-1] in ("pyproject.toml", "tests/__init__.py", "tests/conftest.py")
                or m.name.split("/", 1)[-1] == "tests/test_models.py"
            ]
            tar.extractall(out / "sdist", members=wanted, filter="data")
        root = out / "sdist" / f"timm-{version}"
    suite = out / "suite"
    (suite / "tests").mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/conftest.py", "tests/test_models.py", "pyproject.toml"):
        (suite / name).write_bytes((root / name).read_bytes())
    return suite


def _outcomes(junit: Path) -> list[tuple[str, str, str]]:
    """``(test id, outcome, message)`` per case of a JUnit XML report; outcome is passed, failed,
    error, skipped or xfailed."""
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = ("failed" if child.tag == "failure" else "error"), child.get("message") or ""
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), child.get("message") or ""
        found.append((case.get("name") or "", outcome, message))
    return found


@pytest.mark.slow
def test_timm_model_suite_on_our_architectures(timm_tests: Path, tmp_path: Path) -> None:
    junit = tmp_path / "timm-suite.xml"
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}  # the suite selects by it
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(PLUGIN_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "conftest_zeromamba",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-q",
        "--tb=line",
        f"--junitxml={junit}",
        "tests/test_models.py",
    ]
    res = subprocess.run(cmd, cwd=timm_tests, env=env, capture_output=True, text=True, timeout=1800)
    assert junit.is_file(), f"timm's suite did not run:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    cases = _outcomes(junit)
    by_family: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, outcome, _ in cases:
        by_family[name.split("[")[0]][outcome] += 1
    table = "\n".join(f"{f}: {dict(c)}" for f, c in sorted(by_family.items()))

    broken = [f"{name}: {message[:300]}" for name, outcome, message in cases if outcome in ("failed", "error")]
    assert not broken, "unexpected failures in timm's suite:\n" + "\n".join(broken) + "\n" + table
    odd_skips = [
        f"{name}: {message}"
        for name, outcome, message in cases
        if outcome == "skipped"
        and not message.startswith(("needs the network", "slow: "))
        and message not in SUITE_SKIPS
    ]
    assert not odd_skips, "skips nobody listed:\n" + "\n".join(odd_skips)
    assert res.returncode == 0, res.stdout[-3000:]
    for family in MUST_PASS:
        assert by_family[family]["passed"] > 0, f"{family} passed on none of our architectures:\n{table}"
    print(table)
