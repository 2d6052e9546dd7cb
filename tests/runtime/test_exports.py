"""What the built binaries export: the Python module only its init function (the core is compiled
with hidden visibility and the module linked with a version script, CMakeLists.txt)."""

import shutil
from pathlib import Path

import pytest

import cpucnn as cc

from runtime_util import run  # tests/runtime is on sys.path under pytest


def _nm():
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm is not installed")
    return nm


def test_core_module_exports_only_pyinit():
    """_core exports PyInit__core and nothing else: no core C++ symbol, no std template instance or
    typeinfo (libstdc++ keeps those visible whatever -fvisibility says) that another library loaded
    into the process could interpose with or bind to."""
    so = Path(cc._core.__file__).resolve()
    if so.suffix != ".so":
        pytest.skip(f"{so.name} is not an ELF shared object")
    proc = run([_nm(), "-D", "--defined-only", so])
    names = sorted({line.split()[-1] for line in proc.stdout.splitlines() if line.strip()})
    assert names == ["PyInit__core"], f"{so} exports {len(names)} symbols, not only PyInit__core: {names[:30]}"
