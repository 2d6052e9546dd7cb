"""Fixtures for the edge runtime tests: one plain-CMake build of the runtime (no Python in it),
installed into a prefix, shared by every test of the session.

Set CPUCNN_RUNTIME_BUILD_DIR to reuse a build tree configured with -DCPUCNN_PYTHON=OFF (CI builds
it once and runs ctest itself); otherwise the runtime is configured and built in a temp dir.
"""

import os
import shutil
from pathlib import Path

import pytest

from runtime_util import ROOT, run  # noqa: E402,F401  (tests/runtime is on sys.path under pytest)


def _jobs():
    return str(max(1, min(os.cpu_count() or 1, 8)))


@pytest.fixture(scope="session")
def runtime_build(tmp_path_factory):
    """The runtime's CMake build tree (built if needed)."""
    if not shutil.which("cmake"):
        pytest.skip("cmake is not installed")
    given = os.environ.get("CPUCNN_RUNTIME_BUILD_DIR")
    if given:
        build = Path(given)
        if not (build / "CMakeCache.txt").exists():
            run(["cmake", "-S", ROOT, "-B", build, "-DCPUCNN_PYTHON=OFF"])
    else:
        build = tmp_path_factory.mktemp("runtime") / "build"
        run(["cmake", "-S", ROOT, "-B", build, "-DCPUCNN_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release"])
    run(["cmake", "--build", build, "-j", _jobs()])
    return build


@pytest.fixture(scope="session")
def prefix(runtime_build, tmp_path_factory):
    """`cmake --install` of the runtime into a fresh prefix."""
    p = tmp_path_factory.mktemp("prefix")
    run(["cmake", "--install", runtime_build, "--prefix", p])
    return p


@pytest.fixture(scope="session")
def cpucnn_run(prefix):
    return prefix / "bin" / "cpucnn-run"


@pytest.fixture(scope="session")
def c_compiler():
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    return cc
