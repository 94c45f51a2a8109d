"""The docstrings of equilib: runnable examples, and Google-style sections that match the code.

- Doctests: every ``>>>`` example in every module of the ``equilib`` package runs and prints what its docstring says
  (one test per module with examples), and there are at least ``MIN_DOCTESTS`` docstrings with examples, so the
  check cannot pass vacuously.
- The public API: the names in ``__all__`` of ``equilib`` and its sub-packages (ops, so3, groups, data, nn, train,
  utils), the public functions and classes of ``equilib.calculator`` and ``equilib.relaxation``, and the backend
  classes of the tensor products (``equilib.ops.cg``, ``grid``, ``gaunt``, ``cp``). Each function, class and public
  method (also those defined in equilib base classes, e.g. ``forward`` and ``convolution`` of every backend) has a
  docstring (a method without one of its own inherits its base's, as :func:`inspect.getdoc` does) where:

  - a function with parameters (other than ``self``/``cls``) has an ``Args:`` section naming each parameter;
  - a function that returns a value (a ``return`` with a value in its own body) has ``Returns:``, a generator
    ``Yields:`` (or ``Returns:``);
  - every exception class raised in its own source (``raise ValueError(...)``, found with :mod:`ast`, nested
    functions included) is listed under ``Raises:``;
  - a class documents its constructor: the parameters of the ``__init__`` it uses (the first one defined in equilib
    along its MRO) under ``Args:``, and the exceptions that ``__init__`` (or a dataclass's ``__post_init__``) raises
    under ``Raises:``; a dataclass or named tuple lists every field under ``Attributes:`` instead of ``Args:``.

  Exempt: properties and dunder methods (their behaviour is the class's, documented there), and
  ``NotImplementedError`` raised by abstract base methods.
- The config dataclasses of :mod:`equilib.train` (every dataclass defined in its modules, the ``Options`` of loss
  terms and callbacks included) list every field under ``Attributes:``.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import equilib

MIN_DOCTESTS = 15
PUBLIC_PACKAGES = ["equilib", "equilib.ops", "equilib.so3", "equilib.groups", "equilib.frames", "equilib.curvature",
                   "equilib.data", "equilib.nn", "equilib.train", "equilib.utils", "equilib.soft", "equilib.lie"]
PUBLIC_MODULES = ["equilib.calculator", "equilib.relaxation"]  # public names: those without a leading underscore
BACKEND_MODULES = ["equilib.ops.cg", "equilib.ops.grid", "equilib.ops.gaunt", "equilib.ops.cp"]
SECTIONS = ("Args", "Attributes", "Returns", "Yields", "Raises", "Examples", "Note", "Notes", "References")
HEADER = re.compile(rf"^({'|'.join(SECTIONS)}):\s*$")
ENTRY = re.compile(r"^ {4}(\*{0,2}[A-Za-z_][\w.]*)\s*(\([^)]*\))?\s*:")
EXEMPT_RAISES = {"NotImplementedError"}

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(equilib.__path__, "equilib."))


# -- doctests ---------------------------------------------------------------------------------------------------------


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


DOCTESTS = {name: tests for name in ["equilib", *MODULES] if (tests := _doctests(name))}


def test_enough_doctests():
    found = sum(len(tests) for tests in DOCTESTS.values())
    examples = sum(len(t.examples) for tests in DOCTESTS.values() for t in tests)
    assert found >= MIN_DOCTESTS, (f"expected at least {MIN_DOCTESTS} docstrings with examples in equilib, found "
                                   f"{found} ({examples} examples) in {sorted(DOCTESTS)}")


@pytest.mark.parametrize("module_name", sorted(DOCTESTS))
def test_doctests(module_name):
    runner = doctest.DocTestRunner()  # no option flags: an example that needs one says so (# doctest: +ELLIPSIS)
    report: list[str] = []
    failed = attempted = 0
    for test in DOCTESTS[module_name]:
        result = runner.run(test, out=report.append, clear_globs=True)
        failed, attempted = failed + result.failed, attempted + result.attempted
    assert attempted > 0
    assert failed == 0, f"{failed} of {attempted} examples failed in {module_name}:\n" + "".join(report)


# -- the public API ---------------------------------------------------------------------------------------------------


def _defined_in_equilib(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("equilib")


def _public_objects() -> dict[str, object]:
    """Qualified name -> public function or class."""
    found: dict[str, object] = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            found[f"{package}.{name}"] = getattr(module, name)
    for module_name in PUBLIC_MODULES + BACKEND_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if not name.startswith("_") and getattr(obj, "__module__", None) == module_name:
                found[f"{module_name}.{name}"] = obj
    return {name: obj for name, obj in found.items()
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and _defined_in_equilib(obj)}


def _sections(doc: str) -> dict[str, list[str]]:
    """Google-style sections of a cleaned docstring: header -> the lines under it."""
    out: dict[str, list[str]] = {}
    current = None
    for line in doc.splitlines():
        match = HEADER.match(line)
        if match:
            current = match.group(1)
            out[current] = []
        elif current is not None and line and not line[0].isspace():
            current = None  # text back at the left margin ends a section
        elif current is not None:
            out[current].append(line)
    return out


def _entries(lines: list[str]) -> set[str]:
    """The names of a section's entries (``name (type): ...`` or ``name: ...``, indented once)."""
    return {m.group(1).lstrip("*").rsplit(".", 1)[-1] for line in lines if (m := ENTRY.match(line))}


def _function_node(func) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    return next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)


def _own_nodes(node):
    """The nodes of a function's own body, not those of functions, lambdas or classes nested in it."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(child))


def _raised(node) -> set[str]:
    """Names of the exception classes raised anywhere in a function's source (nested functions included)."""
    names = set()
    for raise_node in (n for n in ast.walk(node) if isinstance(n, ast.Raise) and n.exc is not None):
        exc = raise_node.exc.func if isinstance(raise_node.exc, ast.Call) else raise_node.exc
        if isinstance(exc, ast.Name):
            names.add(exc.id)
        elif isinstance(exc, ast.Attribute):
            names.add(exc.attr)
    return names - EXEMPT_RAISES


def _returns_value(node) -> bool:
    return any(isinstance(n, ast.Return) and n.value is not None
               and not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in _own_nodes(node))


def _is_generator(node) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node))


def _function_problems(func, skip_first: bool) -> list[str]:
    """What the docstring of ``func`` lacks."""
    func = inspect.unwrap(func)
    doc = inspect.getdoc(func)
    if not doc:
        return ["no docstring"]
    sections = _sections(doc)
    problems = []
    params = [p for p in inspect.signature(func).parameters.values()]
    if skip_first and params:
        params = params[1:]
    documented = _entries(sections.get("Args", []))
    missing = [p.name for p in params if p.name not in documented]
    if missing:
        problems.append(f"Args: does not name {missing}")
    node = _function_node(func)
    if node is None:
        return problems
    if _is_generator(node):
        if "Yields" not in sections and "Returns" not in sections:
            problems.append("a generator without Yields:")
    elif _returns_value(node) and "Returns" not in sections:
        problems.append("returns a value but has no Returns:")
    unlisted = sorted(_raised(node) - _entries(sections.get("Raises", [])))
    if unlisted:
        problems.append(f"Raises: does not list {unlisted}")
    return problems


def _fields(cls) -> list[str] | None:
    """Field names of a dataclass or named tuple, None for other classes."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return list(cls._fields)
    return None


def _class_problems(cls) -> list[str]:
    doc = cls.__dict__.get("__doc__")
    fields = _fields(cls)
    if not doc or (fields is not None and doc.startswith(f"{cls.__name__}(")):  # a dataclass's generated signature
        return ["no docstring"]
    sections = _sections(inspect.cleandoc(doc))
    problems = []
    if fields is not None:
        missing = [name for name in fields if name not in _entries(sections.get("Attributes", []))]
        if missing:
            problems.append(f"Attributes: does not list the fields {missing}")
    raised: set[str] = set()
    init = next((k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__ and _defined_in_equilib(k)),
                None)
    if init is not None and fields is None:
        params = list(inspect.signature(init).parameters)[1:]
        missing = [p for p in params if p not in _entries(sections.get("Args", []))]
        if missing:
            problems.append(f"Args: does not name the constructor's parameters {missing}")
    for method in (init, cls.__dict__.get("__post_init__")):
        if method is not None and _defined_in_equilib(method) and (node := _function_node(method)) is not None:
            raised |= _raised(node)
    unlisted = sorted(raised - _entries(sections.get("Raises", [])))
    if unlisted:
        problems.append(f"Raises: does not list {unlisted} (raised by the constructor)")
    return problems


def _api() -> dict[str, list[str]]:
    """Qualified name -> problems, for every public function, class and method."""
    report: dict[str, list[str]] = {}
    seen: set[int] = set()
    for qualname, obj in _public_objects().items():
        if inspect.isfunction(obj):
            report[qualname] = _function_problems(obj, skip_first=False)
            continue
        report[qualname] = _class_problems(obj)
        for klass in obj.__mro__:
            if not _defined_in_equilib(klass):
                continue
            for name, attr in vars(klass).items():
                if name.startswith("_") or isinstance(attr, property) or id(attr) in seen:
                    continue
                if isinstance(attr, staticmethod):
                    func, skip_first = attr.__func__, False
                elif isinstance(attr, classmethod):
                    func, skip_first = attr.__func__, True
                elif inspect.isfunction(attr):
                    func, skip_first = attr, True
                else:
                    continue
                seen.add(id(attr))
                report[f"{klass.__module__}.{klass.__qualname__}.{name}"] = _function_problems(func, skip_first)
    return report


def _config_dataclasses() -> dict[str, type]:
    """Every dataclass defined in a module of equilib.train, nested ones (``Options``) included."""
    found: dict[str, type] = {}
    for module_name in (m for m in MODULES if m.startswith("equilib.train.")):
        module = importlib.import_module(module_name)
        stack = [obj for obj in vars(module).values() if inspect.isclass(obj) and obj.__module__ == module_name]
        while stack:
            cls = stack.pop()
            if dataclasses.is_dataclass(cls):
                found[f"{module_name}.{cls.__qualname__}"] = cls
            stack.extend(v for v in vars(cls).values() if inspect.isclass(v) and v.__module__ == module_name)
    return found


def test_public_api_is_found():
    objects = _public_objects()
    assert len(objects) > 80, sorted(objects)
    for name in ("equilib.ops.TensorProduct", "equilib.train.Trainer", "equilib.ops.grid.GridTensorProduct",
                 "equilib.relaxation.relax", "equilib.calculator.EquilibCalculator"):
        assert name in objects
    assert len(_config_dataclasses()) >= 15, sorted(_config_dataclasses())


def test_public_api_docstrings():
    problems = {name: found for name, found in _api().items() if found}
    assert not problems, "docstrings that do not match the code:\n" + "\n".join(
        f"  {name}: {'; '.join(found)}" for name, found in sorted(problems.items()))


def test_config_dataclasses_list_their_fields():
    problems = {name: found for name, cls in _config_dataclasses().items() if (found := _class_problems(cls))}
    assert not problems, "config dataclasses whose docstring does not list every field:\n" + "\n".join(
        f"  {name}: {'; '.join(found)}" for name, found in sorted(problems.items()))
