"""Shared fixtures: every kernel path the build has (those this CPU lacks
skipped, with the reason), torch when present."""

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn", reason="cpucnn is not installed (pip install .)")

AVAILABLE = cc.available_isas()
# Every ISA the build has, best first like available_isas(). _core does not
# export dispatch's compiled_isas() (yet): the fixed list is what it returns.
_compiled = getattr(cc._core, "compiled_isas", None)
COMPILED = list(_compiled()) if _compiled else ["avx512", "avx2", "scalar"]
COMPILED += [i for i in AVAILABLE if i not in COMPILED]  # never drop one the CPU runs
MISSING = [i for i in COMPILED if i not in AVAILABLE]


def skip_unless_available(isa: str) -> None:
    """Skips the calling test, with the reason, where this CPU cannot run `isa`."""
    if isa not in AVAILABLE:
        features = ", ".join(k for k, v in cc.cpu_info().get("features", {}).items() if v) or "none"
        pytest.skip(f"CPU lacks {isa}: it runs {', '.join(AVAILABLE)} (features: {features})")


@pytest.fixture(params=COMPILED)
def isa(request):
    """Runs the test once per ISA of the build (skipped where the CPU lacks
    it), restoring the default after."""
    skip_unless_available(request.param)
    default = cc.cpu_info()["isa"]
    cc.set_isa(request.param)
    try:
        yield request.param
    finally:
        cc.set_isa(default)


@pytest.fixture
def lacked_isas():
    """The ISAs of the build this CPU cannot run (skips, with the reason, where
    it runs them all): for the errors an unsupported path must give."""
    if not MISSING:
        pytest.skip(f"CPU runs every ISA of the build ({', '.join(COMPILED)}): none to refuse")
    return list(MISSING)


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    before = cc.get_num_threads()
    yield
    cc.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Runs a test on one thread (tiny models: fastest, and stable timings on shared CI cores)."""
    before = cc.get_num_threads()
    cc.set_num_threads(1)
    yield
    cc.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_report_header(config):
    info = cc.cpu_info()
    exercised = ", ".join(i for i in COMPILED if i in AVAILABLE)
    skipped = ", ".join(MISSING) if MISSING else "none"
    return [f"cpucnn {cc.__version__}: default isa={info['isa']} threads={info['num_threads']}",
            f"ISAs exercised: {exercised}; skipped (CPU lacks them): {skipped}"]
