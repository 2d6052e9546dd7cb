"""Shared fixtures: every kernel path this CPU can run, torch when present."""

import os

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn", reason="cpucnn is not installed (pip install .)")

ISAS = cc.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per ISA this machine supports, restoring the default after."""
    default = cc.cpu_info()["isa"]
    cc.set_isa(request.param)
    try:
        yield request.param
    finally:
        cc.set_isa(default)


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
    return f"cpucnn {cc.__version__}: isa={info['isa']} available={ISAS} threads={info['num_threads']}"
