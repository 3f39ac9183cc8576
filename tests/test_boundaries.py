"""Boundaries of the code base, checked on its syntax trees (not with greps, which miss aliases).

- Only ``core/backend.py`` knows which backend is in use: nowhere else compares a backend kind,
  probes an implementation with ``isinstance`` or ``hasattr``, or keeps an ``is_local`` flag.
- ``core`` never imports streamlit; pages never import boto3, sqlite3, subprocess or smdebug.
- ``entrypoints/`` (shipped to SageMaker as the job's code) and ``lambda/`` (shipped to AWS Lambda)
  import nothing from ``core``.
- Page scripts hold no bare string below their docstring: Streamlit's magic would show it on the page.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APP_CODE = sorted([REPO / "streamlit_app.py", REPO / "server.py",
                   *(path for folder in ("app_pages", "core", "analysers") for path in (REPO / folder).rglob("*.py"))])
KNOWS_THE_BACKEND = REPO / "core" / "backend.py"
IMPLEMENTATION_PREFIXES = ("Local", "SageMaker", "Aws", "Ec2", "S3")
BACKEND_NAMES = {"aws", "local"}


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _branches_on_backend(node: ast.AST) -> str | None:
    """Why node asks which backend is in use, or None."""
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        if any("BackendKind" in _names_in(o) for o in operands):
            return "compares a BackendKind"
        literals = {o.value for o in operands if isinstance(o, ast.Constant) and isinstance(o.value, str)}
        if literals & BACKEND_NAMES and any({"kind", "backend", "backend_name"} & _names_in(o) for o in operands):
            return "compares a backend's name"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "hasattr":
            return "probes an attribute with hasattr"
        if node.func.id == "isinstance" and len(node.args) == 2:
            classes = _names_in(node.args[1])
            if any(c.startswith(IMPLEMENTATION_PREFIXES) and c[0].isupper() for c in classes):
                return f"probes an implementation with isinstance ({', '.join(sorted(classes))})"
    if isinstance(node, ast.Name) and node.id == "is_local":
        return "keeps an is_local flag"
    return None


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", [p for p in APP_CODE if p != KNOWS_THE_BACKEND], ids=lambda p: str(p.relative_to(REPO)))
def test_only_core_backend_knows_which_backend_is_in_use(path: Path) -> None:
    found = [f"line {node.lineno}: {why}" for node in ast.walk(_tree(path))
             if (why := _branches_on_backend(node)) is not None]
    assert not found, f"{path.relative_to(REPO)} asks which backend is in use; ask a capability instead: {found}"


def test_the_backend_check_finds_what_it_is_for() -> None:
    """The check above can fail: each shape of backend branching it looks for is caught."""
    samples = ["be.kind is BackendKind.AWS", "settings.backend == 'aws'", "hasattr(spot, 'cleanup')",
               "isinstance(runner, LocalJobRunner)", "is_local = True"]
    for sample in samples:
        assert any(_branches_on_backend(node) for node in ast.walk(ast.parse(sample))), sample
    assert not any(_branches_on_backend(node) for node in ast.walk(ast.parse("event.kind == 'launch'")))


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("core", {"streamlit"}),
    ("app_pages", {"boto3", "botocore", "sqlite3", "subprocess", "smdebug"}),
    ("entrypoints", {"core"}),
    ("lambda", {"core"}),
])
def test_imports_stay_within_their_layer(folder: str, forbidden: set[str]) -> None:
    paths = sorted((REPO / folder).rglob("*.py"))
    assert paths, f"no Python file under {folder}/"
    offenders = {str(path.relative_to(REPO)): sorted(_imports(_tree(path)) & forbidden) for path in paths}
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"imports across a boundary: {offenders}"


@pytest.mark.parametrize("path", [REPO / "streamlit_app.py", *sorted((REPO / "app_pages").glob("[!_]*.py"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_page_scripts_show_no_stray_string(path: Path) -> None:
    body = _tree(path).body  # type: ignore[attr-defined]
    strays = [node.lineno for node in body[1:]
              if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)]
    assert not strays, f"{path.relative_to(REPO)}: Streamlit would show the string on line(s) {strays}; use a comment"
