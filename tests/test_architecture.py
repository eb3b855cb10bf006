"""The shape of the library, read from its source: imports run one way, nothing private
crosses a module, no module global is rebound from outside, long functions say why.

Floors (docs/architecture.md): ats -> models -> checkpoint / flops -> data -> config -> engine
-> cli / integrations; tools/ and experiments/ sit above and import the library only.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "video_ats"

# Each unit (a top-level module or subpackage of video_ats) and its floor. A unit imports units
# of lower floors only; two units of one floor never import each other.
FLOORS = {
    "ats": 0,
    "models": 1,
    "checkpoint": 2, "flops": 2,
    "data": 3,
    "config": 4,
    "engine": 5,
    "cli": 6, "integrations": 6,
}
LONG_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules():
    return sorted(PACKAGE.rglob("*.py"))


def resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module an ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports(path: Path):
    """(line, imported module, names, at module level) for every import of the repository's code."""
    importer = module_name(path)
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    top_level |= {id(child) for node in tree.body if isinstance(node, (ast.Try, ast.If))
                  for child in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = resolve(node, importer, path.name == "__init__.py")
            names = [alias.name for alias in node.names]
            if source == "video_ats" or source.startswith("video_ats."):
                # "from . import flops" names submodules of the package it reads from
                yield node.lineno, source, names, id(node) in top_level
            elif source.split(".")[0] in ("experiments", "tools"):
                yield node.lineno, source, names, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("video_ats", "experiments", "tools"):
                    yield node.lineno, alias.name, [], id(node) in top_level


def unit_of(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "video_ats" else None


def test_every_unit_of_the_package_has_a_floor():
    units = {unit_of(module_name(path)) for path in library_modules()} - {None}
    assert units == set(FLOORS)


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_down_the_floors_at_module_level(path):
    importer = module_name(path)
    own = unit_of(importer)
    problems = []
    for line, source, names, at_module_level in package_imports(path):
        where = f"{path.relative_to(ROOT)}:{line} imports {source}"
        if source.split(".")[0] in ("experiments", "tools"):
            problems.append(f"{where}: the library never imports the lab or the tools")
            continue
        if own is None:                       # the package's __init__: the public API, any floor
            continue
        if not at_module_level:
            problems.append(f"{where} inside a function (a lazy import hides the order of the floors)")
        targets = [source] if source != "video_ats" else [f"video_ats.{name}" for name in names]
        for target in targets:
            unit = unit_of(target)
            if unit is None or unit not in FLOORS:
                problems.append(f"{where}: reads the package root; import the module that defines the name")
            elif unit != own and FLOORS[unit] >= FLOORS[own]:
                problems.append(f"{where}: {unit} (floor {FLOORS[unit]}) is not below {own} (floor {FLOORS[own]})")
    assert not problems, "\n".join(problems)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_edges(path: Path) -> set:
    """The modules importing ``path`` runs: each one named, and the packages above it (their
    __init__ runs first) that do not also hold ``path``."""
    importer = module_name(path)
    edges = set()
    for _, source, names, _ in package_imports(path):
        named = [f"{source}.{name}" for name in names if is_module(f"{source}.{name}")] or [source]
        for target in named:
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1)
                         if not (importer + ".").startswith(".".join(parts[:i]) + "."))
    return edges - {importer}


def test_the_module_graph_has_no_cycle():
    graph = {module_name(path): import_edges(path) for path in library_modules()}
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail + [module, target]))
            if target not in state:
                visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def code_files():
    return library_modules() + sorted((ROOT / "tools").glob("*.py")) + sorted((ROOT / "experiments").glob("*.py"))


# Private names still imported across modules, each with the change that removes it. The list
# must match exactly, so an entry left behind after the fix fails too.
KNOWN_PRIVATE_IMPORTS = set()


def test_no_private_name_is_imported_across_modules():
    found = set()
    for path in code_files():
        for _, source, names, _ in package_imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    found.add((str(path.relative_to(ROOT)), source, name))
    assert found == KNOWN_PRIVATE_IMPORTS


def test_no_module_rebinds_a_constant_of_another_module():
    problems = []
    for path in code_files():
        tree = ast.parse(path.read_text())
        modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names if alias.name.islower()}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if (isinstance(target, ast.Attribute) and target.attr.isupper() and isinstance(target.value, ast.Name)
                        and target.value.id in modules):
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno} rebinds {target.value.id}.{target.attr}")
    assert not problems, "\n".join(problems)


def function_lengths(path: Path):
    """(name, line, body lines without the docstring, docstring) of every function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node) or ""
            body = node.body[1:] if docstring else node.body
            length = body[-1].end_lineno - body[0].lineno + 1 if body else 0
            yield node.name, node.lineno, length, docstring


def test_long_library_functions_say_why_in_their_docstring():
    # "Long because ..." in the docstring is the reason; without one a function's body
    # (docstring excluded) stays within LONG_FUNCTION_LINES lines.
    long = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)" for path in library_modules()
            for name, line, length, docstring in function_lengths(path)
            if length > LONG_FUNCTION_LINES and "Long because" not in docstring]
    assert not long, "\n".join(long)


def test_optional_extras_are_imported_through_the_one_helper():
    # tests/optional_extras.require_extra skips with the install command outside CI and fails
    # under CI=true; a test module that skips on its own could skip silently in CI.
    skipping = [f"{path.name}:{number}" for path in sorted((ROOT / "tests").glob("*.py"))
                if path.name not in ("optional_extras.py", Path(__file__).name)
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if "importorskip" in line or "pytest.skip(" in line or "mark.skipif" in line]
    assert not skipping, skipping


@pytest.mark.parametrize("ci,outcome", [("true", ImportError), ("", pytest.skip.Exception)])
def test_a_missing_extra_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    from optional_extras import require_extra

    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        require_extra("video_ats_no_such_extra_module", "test")
