"""The documentation: every public name has its own docstring naming its arguments, every reference
in a docstring resolves, the API reference builds with pdoc (the README's command) without a
warning or a broken link, and nothing in the README or the docstrings points outside the repository.
"""

import doctest
import html.parser
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cpucnn

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _modules():
    return [cpucnn] + [getattr(cpucnn, n) for n in cpucnn.__all__ if inspect.ismodule(getattr(cpucnn, n))]


def _public():
    """(qualified name, object, owner class or None, module) for every public name."""
    out = []
    for mod in _modules():
        out.append((mod.__name__, mod, None, mod))
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            out.append((f"{mod.__name__}.{name}", obj, None, mod))
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if k.startswith("_"):
                        continue
                    if isinstance(v, (staticmethod, classmethod)):
                        v = v.__func__
                    if inspect.isfunction(v) or isinstance(v, property):
                        out.append((f"{mod.__name__}.{name}.{k}", v, obj, mod))
    return out


def _doc(obj, owner, name):
    """The docstring pdoc shows: a class's own (never its base's), a method's own or the one it overrides."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    if owner is not None:
        return inspect.getdoc(getattr(owner, name.rsplit(".", 1)[1])) or ""
    return obj.__doc__ or ""


PUBLIC = _public()


@pytest.mark.parametrize("qual,obj,owner,mod", PUBLIC, ids=[p[0] for p in PUBLIC])
def test_public_name_has_a_docstring_naming_its_arguments(qual, obj, owner, mod):
    doc = _doc(obj, owner, qual)
    assert len(doc.strip()) >= 20, f"{qual} has no docstring of its own"
    fn = obj.__init__ if inspect.isclass(obj) else (obj.fget if isinstance(obj, property) else obj)
    if inspect.ismodule(obj) or (inspect.isclass(obj) and "__init__" not in vars(obj) and
                                 all("__init__" not in vars(b) for b in obj.__mro__[1:-1])):
        return
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return
    missing = [p.name for p in params
               if p.name not in ("self", "cls") and not p.name.startswith("_")
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and not re.search(rf"\b{p.name}\b", doc)]
    assert not missing, f"{qual}'s docstring does not describe its argument(s) {', '.join(missing)}"


def test_activations_have_their_own_docstrings():
    base = cpucnn.layers.Layer.__doc__
    for name in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"):
        cls = getattr(cpucnn.layers, name)
        assert cls.__doc__ and cls.__doc__ != base and "__doc__" in vars(cls) and vars(cls)["__doc__"], name


_REF = re.compile(r"(?<![`\w])`([A-Za-z_][\w.]*)(?:\(\))?`(?!`)")


def _resolves(ref, mod, owner):
    for start in (cpucnn, mod, owner):
        if start is None:
            continue
        obj, ok = start, True
        parts = ref.split(".")
        if start is cpucnn and parts[0] == "cpucnn":
            parts = parts[1:]
        for part in parts:
            if not hasattr(obj, part):
                ok = False
                break
            obj = getattr(obj, part)
        if ok:
            return True
    return False


def test_docstring_references_resolve():
    broken = []
    for qual, obj, owner, mod in PUBLIC:
        doc = _doc(obj, owner, qual)
        if re.search(r":(func|meth|class|mod|attr):`", doc):
            broken.append(f"{qual}: a Sphinx role (pdoc does not resolve them; write `name`)")
        for ref in _REF.findall(doc):
            if not _resolves(ref, mod, owner if owner is not None else (obj if inspect.isclass(obj) else None)):
                broken.append(f"{qual}: `{ref}`")
    assert not broken, "references that name nothing in cpucnn:\n" + "\n".join(broken)


def test_nothing_points_outside_the_repository():
    texts = {"README.md": README.read_text()}
    texts.update({f"src/cpucnn/{p.name}": p.read_text() for p in (ROOT / "src" / "cpucnn").glob("*.py")})
    for where, text in texts.items():
        for bad in ("DESIGN.md", "STYLE.md", "../shared", "/work/"):
            assert bad not in text, f"{where} points outside the repository: {bad!r}"


def test_readme_shows_the_npy_input_for_cpucnn_run_and_the_docs_command():
    text = README.read_text()
    assert "np.save(" in text and "cpucnn-run" in text
    assert PDOC_COMMAND in text


PDOC_COMMAND = "python -m pdoc -o docs/api cpucnn"


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def test_api_reference_builds_without_warnings_or_broken_links(tmp_path):
    pytest.importorskip("pdoc", reason="pdoc is not installed (pip install pdoc, or the test extras)")
    env = dict(os.environ)
    package_parent = str(Path(cpucnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    out = tmp_path / "api"
    # The README's command, into a temporary folder, with every warning an error.
    args = PDOC_COMMAND.split()[1:]
    args[args.index("docs/api")] = str(out)
    r = subprocess.run([sys.executable, "-W", "error", *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warn" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    pages = {p.resolve(): p for p in out.rglob("*.html")}
    assert (out / "cpucnn.html").exists() and (out / "cpucnn" / "torch_interop.html").exists()
    parsed = {}
    for path in pages:
        p = _Links()
        p.feed(path.read_text())
        parsed[path] = p
    text = (out / "cpucnn.html").read_text()
    for name in ("Sequential", "SubModel", "from_torch", "load"):
        assert f'id="{name}"' in text, name
    broken = []
    for path, p in parsed.items():
        for href in p.hrefs:
            if re.match(r"^[a-z]+:", href):   # https:, mailto:
                continue
            target, _, anchor = href.partition("#")
            dest = (path.parent / target).resolve() if target else path
            if dest not in parsed:
                broken.append(f"{path.name}: {href} (no such page)")
            elif anchor and anchor not in parsed[dest].ids:
                broken.append(f"{path.name}: {href} (no such anchor)")
    assert not broken, "broken links in the API reference:\n" + "\n".join(broken[:20])


def test_docstring_examples_run(capsys):
    """The examples in the docstrings (those not marked ``+SKIP``: they need data or torch) give the output shown."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for mod in _modules() + [cpucnn.model]:
        for test in finder.find(mod, mod.__name__, globs=dict(vars(mod))):
            runner.run(test)
    result = runner.summarize(verbose=False)
    report = capsys.readouterr().out
    assert result.failed == 0, f"{result.failed} docstring example(s) failed:\n{report}"
    assert result.attempted >= 8, f"only {result.attempted} examples ran: the finder missed some"
