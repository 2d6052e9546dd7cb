"""src/cpucnn/_core.pyi matches the compiled module, so the stub cannot drift.

The stub is parsed with ``ast`` and compared with ``dir(cpucnn._core)``: the
public names, Model's methods and properties (read-only or settable, static),
the kernels submodule, each function's parameter names, order, defaults and
positional-only-ness (read from pybind11's signature docstrings), and the keys
of the dicts the module returns against the stub's TypedDicts.
"""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import cpucnn as cc
from cpucnn import _core

STUB_PATH = Path(__file__).resolve().parents[2] / "src" / "cpucnn" / "_core.pyi"


# ---------------------------------------------------------------------------
# Reading the stub
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub():
    return ast.parse(STUB_PATH.read_text(), filename=str(STUB_PATH))


def _decorators(fn):
    out = set()
    for d in fn.decorator_list:
        if isinstance(d, ast.Name):
            out.add(d.id)
        elif isinstance(d, ast.Attribute):
            out.add(d.attr)   # "setter" for @x.setter
    return out


def top_level(tree):
    """{name: node} of the stub's module-level definitions (functions, classes, annotated names)."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def class_members(cls):
    """{name: (kind, getter node, has setter)}; kind in method/property/staticmethod."""
    members = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decos = _decorators(node)
        if "setter" in decos:
            kind, fn, _ = members[node.name]
            members[node.name] = (kind, fn, True)
        elif "property" in decos:
            members[node.name] = ("property", node, False)
        elif "staticmethod" in decos:
            members[node.name] = ("staticmethod", node, False)
        else:
            members[node.name] = ("method", node, False)
    return members


def stub_params(fn):
    """[(name, positional_only, default node or None)] of a stub function."""
    a = fn.args
    assert not a.vararg and not a.kwarg and not a.kwonlyargs, f"{fn.name}: only plain parameters are expected"
    plain = [(p.arg, True) for p in a.posonlyargs] + [(p.arg, False) for p in a.args]
    defaults = [None] * (len(plain) - len(a.defaults)) + list(a.defaults)
    return [(name, po, d) for (name, po), d in zip(plain, defaults)]


# ---------------------------------------------------------------------------
# Reading pybind11's signatures
# ---------------------------------------------------------------------------


def _split_top(text, sep=","):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def runtime_signature(obj, name):
    """([(param name, default text or None)], return text) from a pybind11 docstring."""
    doc = (obj.__doc__ or "").lstrip()
    assert doc.startswith(name + "("), f"{name}: no pybind11 signature in {doc[:80]!r} (overloads are not expected)"
    depth, end = 0, None
    for i, ch in enumerate(doc):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                end = i
                break
    inner = doc[len(name) + 1:end]
    ret = re.match(r"\s*->\s*(.*)", doc[end + 1:].splitlines()[0]).group(1).strip()
    params = []
    for piece in _split_top(inner):
        head, _, default = piece.partition(" = ")
        params.append((head.split(":")[0].strip(), default.strip() or None))
    return params, ret


def check_signature(where, fn_node, runtime_obj, runtime_name, is_method):
    got = stub_params(fn_node)
    want, ret = runtime_signature(runtime_obj, runtime_name)
    assert len(got) == len(want), f"{where}: stub has {[g[0] for g in got]}, binding has {[w[0] for w in want]}"
    for i, ((sname, posonly, sdefault), (rname, rdefault)) in enumerate(zip(got, want)):
        if is_method and i == 0:
            assert sname == "self", f"{where}: first parameter must be self"
            continue
        if re.fullmatch(r"arg\d+", rname):
            assert posonly, f"{where}: {sname} is unnamed in the binding ({rname}): make it positional-only (/)"
        else:
            assert (sname, posonly) == (rname, False), f"{where}: parameter {i} is {rname!r} (keyword-able)"
        assert (sdefault is None) == (rdefault is None), f"{where}: {rname} default stub/binding mismatch"
        if sdefault is not None and not (isinstance(sdefault, ast.Constant) and sdefault.value is Ellipsis):
            assert ast.literal_eval(sdefault) == ast.literal_eval(rdefault), f"{where}: default of {rname}"
    returns_none = isinstance(fn_node.returns, ast.Constant) and fn_node.returns.value is None
    assert returns_none == (ret == "None"), f"{where}: binding returns {ret}"


def public(names):
    return {n for n in names if not n.startswith("_")}


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_stub_is_shipped_with_the_package():
    assert STUB_PATH.is_file()
    assert (Path(cc.__file__).parent / "py.typed").is_file()
    installed = Path(cc.__file__).parent / "_core.pyi"
    assert installed.is_file(), "the installed package lacks _core.pyi: rebuild (pip install .)"


def test_module_names(stub):
    names = top_level(stub)
    assert public(names) == public(dir(_core)), "stub and cpucnn._core disagree on public names"
    assert "__version__" in names and isinstance(_core.__version__, str)
    private_in_stub = {n for n in names if n.startswith("_") and n != "__version__"}
    for n in private_in_stub:   # helper types of the stub only; never shadow a runtime name
        assert not hasattr(_core, n), n


def test_module_functions(stub):
    names = top_level(stub)
    funcs = [n for n in public(dir(_core)) if callable(getattr(_core, n)) and not isinstance(getattr(_core, n), type)
             and n != "kernels"]
    assert funcs, "no functions found"
    for n in funcs:
        assert isinstance(names[n], ast.FunctionDef), f"{n} is a function in the module"
        check_signature(n, names[n], getattr(_core, n), n, is_method=False)


def test_model_members(stub):
    cls = top_level(stub)["Model"]
    assert isinstance(cls, ast.ClassDef)
    members = class_members(cls)
    runtime = public(dir(_core.Model))
    assert public(members) == runtime, "stub and _core.Model disagree on methods/properties"
    for n in sorted(runtime):
        kind, fn, settable = members[n]
        raw = _core.Model.__dict__[n]
        if isinstance(raw, property):
            assert kind == "property", f"Model.{n} is a property"
            assert settable == (raw.fset is not None), f"Model.{n}: settable is {raw.fset is not None}"
        elif isinstance(raw, staticmethod):
            assert kind == "staticmethod", f"Model.{n} is a static method"
            check_signature(f"Model.{n}", fn, getattr(_core.Model, n), n, is_method=False)
        else:
            assert kind == "method", f"Model.{n} is a method"
            check_signature(f"Model.{n}", fn, getattr(_core.Model, n), n, is_method=True)
    assert "__init__" in members
    check_signature("Model.__init__", members["__init__"][1], _core.Model.__init__, "__init__", is_method=True)


def test_kernels_submodule(stub):
    names = top_level(stub)
    ann = names["kernels"]
    assert isinstance(ann, ast.AnnAssign), "kernels is declared as `kernels: _Kernels`"
    cls = names[ann.annotation.id]
    members = class_members(cls)
    assert public(members) == public(dir(_core.kernels)), "stub and cpucnn._core.kernels disagree"
    for n in public(members):
        kind, fn, _ = members[n]
        assert kind == "staticmethod", f"kernels.{n}: module functions are static methods of the stub class"
        check_signature(f"kernels.{n}", fn, getattr(_core.kernels, n), n, is_method=False)


def _typeddict_keys(tree, name):
    cls = top_level(tree)[name]
    return {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_returned_dicts_match_typeddicts(stub):
    info = _core.cpu_info()
    assert set(info) == _typeddict_keys(stub, "_CpuInfo")
    assert set(info["features"]) == _typeddict_keys(stub, "_CpuFeatures")
    m = _core.Model('{"input_shape": [1, 4, 4], "layers": [{"type": "Conv2D", "filters": 2, "kernel_size": 3}]}', 0)
    li = m.layer_info(0)
    assert set(li) == _typeddict_keys(stub, "_LayerInfo")
    name, shape, trainable = li["params"][0]
    assert (name, shape, trainable) == ("weight", (2, 1, 3, 3), True)
    assert isinstance(m.get_param(0, "weight"), np.ndarray) and m.get_param(0, "weight").dtype == np.float32


def test_checker_catches_drift(stub):
    """The comparison itself can fail: a stub with a renamed or missing parameter is caught."""
    fn = ast.parse("def predict(self, x, size: int = 256) -> int: ...").body[0]
    with pytest.raises(AssertionError, match="batch_size"):
        check_signature("Model.predict", fn, _core.Model.predict, "predict", is_method=True)
    fn = ast.parse("def get_param(self, index: int, name: str) -> int: ...").body[0]
    with pytest.raises(AssertionError, match="positional-only"):
        check_signature("Model.get_param", fn, _core.Model.get_param, "get_param", is_method=True)
    fn = ast.parse("def predict(self, x, batch_size: int = 128) -> int: ...").body[0]
    with pytest.raises(AssertionError, match="default"):
        check_signature("Model.predict", fn, _core.Model.predict, "predict", is_method=True)
    extra = ast.parse(STUB_PATH.read_text() + "\ndef not_in_core() -> None: ...\n")
    assert public(top_level(extra)) != public(dir(_core))
