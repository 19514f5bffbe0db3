"""The import rules of DESIGN §3, and the size limit, checked on the source (no imports run).

Every `import` counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "mini_runtime"
MAX_LINES = 400
NAMEDTUPLE = {"_replace", "_asdict", "_fields", "_make"}  # public despite the underscore
# Names whose underscored attributes are fine: the object itself, and stdlib modules' own API
# (os._exit, argparse._SubParsersAction).
OWN_OR_STDLIB = {"self", "cls", "os", "sys", "argparse"}

#: One file per kernel concept: they build on the syscalls and the shared vocabulary only.
CONCEPTS = {"process", "rootfs", "namespaces", "cgroups", "overlay", "users", "network", "security"}
VOCABULARY = {"syscalls", "paths", "errors", "units", "tuples"}
#: What `image/` may never reach: the pipeline and the faces above it.
PIPELINE = {"runtime", "endpoints", "cgroup_upkeep", "container", "lifecycle", "views", "monitor", "process", "rootfs", "namespaces",
            "cgroups", "users", "backend", "cli", "commands", "daemon", "server"}
#: Deliberate exceptions, each with its reason.
ALLOWED = {
    ("process", "config"): "ProcessSpec is the value a process is started from (chapter 01)",
    ("cli", "hostcopy"): "cp's host half runs in the client, as docker's pkg/archive does in its CLI",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module that `path` imports, as dotted names (`from a import b` gives a and a.b)."""
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def ours(name: str) -> str | None:
    """`mini_runtime.image.store` -> `image.store`; None for anything not of mini_runtime."""
    if name == "mini_runtime" or not name.startswith("mini_runtime."):
        return None
    if name.startswith("mini_runtime.backend.") and name.count(".") == 2 \
            and name.rsplit(".", 1)[1][:1].isupper():
        return "backend"  # `from mini_runtime.backend import Backend`: a name, not a module
    if name.removeprefix("mini_runtime.").startswith("__"):
        return None  # the package's own facts (`__version__`)
    return name.removeprefix("mini_runtime.")


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def first(name: str) -> str:
    return name.split(".")[0]


def violations(path: Path) -> list[str]:
    me = module_name(path).removeprefix("mini_runtime").lstrip(".")
    top = first(me) if me else ""
    found = []
    for full in sorted(imports(path)):
        if first(full) in ("exercises", "tests", "conftest"):
            found.append(f"imports {full}: nothing of ours imports exercises/ or tests/")
        target = ours(full)
        if target is None:
            continue
        head = first(target)
        if head == top or (top, head) in ALLOWED:
            continue
        if top == "syscalls":
            found.append(f"imports {full}: syscalls imports nothing of ours")
        elif top in CONCEPTS and head not in VOCABULARY:
            found.append(f"imports {full}: a concept module imports only {sorted(VOCABULARY)}")
        elif top == "image" and head in PIPELINE:
            found.append(f"imports {full}: image/ never imports the pipeline")
        elif top == "cli" and not (target == "backend" or head in VOCABULARY or head == "config"):
            found.append(f"imports {full}: the CLI imports only the backend interface, errors, units")
        elif top in VOCABULARY - {"syscalls"} and head not in VOCABULARY:
            found.append(f"imports {full}: the shared vocabulary imports only itself")
    return found


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_import_rules(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_over_the_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (at most {MAX_LINES})"


def typing_at_run_time(path: Path) -> list[str]:
    """Imports of `typing` that run: any not inside an `if TYPE_CHECKING:` block (tuples.py)."""
    tree = ast.parse(path.read_text(), str(path))
    checked_only = {id(inner) for node in ast.walk(tree)
                    if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                    and node.test.id == "TYPE_CHECKING"
                    for statement in node.body for inner in ast.walk(statement)}
    return [f"line {node.lineno}" for node in ast.walk(tree) if id(node) not in checked_only and (
        isinstance(node, ast.Import) and any(first(a.name) == "typing" for a in node.names)
        or isinstance(node, ast.ImportFrom) and first(node.module or "") == "typing")]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_typing_is_not_imported_at_run_time(path: Path) -> None:
    """3 ms at every start (chapter 01, "Why mini starts fast"): `@named_tuple` for records,
    `collections.abc` for Callable and Iterator, and the rest under `if TYPE_CHECKING:`."""
    assert typing_at_run_time(path) == []


def test_the_typing_rule_catches_an_import(tmp_path: Path) -> None:
    cases = {"from typing import Any\n": 1, "import typing\n": 1, "import os, typing.io\n": 1,
             "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from typing import Any\n": 0,
             "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    pass\nfrom typing import Any\n": 1,
             "def f():\n    from typing import cast\n": 1}
    for text, expected in cases.items():
        (tmp_path / "m.py").write_text(text)
        assert len(typing_at_run_time(tmp_path / "m.py")) == expected, text


def test_no_private_name_crosses_a_file() -> None:
    """`from x import _name` or `module._name` from another file: make the name public."""
    ours_modules = {first(module_name(p).removeprefix("mini_runtime.")) for p in sources()}
    found = []
    for path in sources() + sorted((REPO / "exercises").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mini_runtime"):
                found += [f"{path.relative_to(REPO)}: from {node.module} import {a.name}"
                          for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.attr.startswith("_") and not node.attr.startswith("__")
                  and node.attr not in NAMEDTUPLE
                  and (node.value.id in ours_modules or node.value.id not in OWN_OR_STDLIB)):
                # a module of ours, or an object (store._lock): only self/cls may reach inside
                found.append(f"{path.relative_to(REPO)}: {node.value.id}.{node.attr}")
    assert found == []


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself: a concept module that imports the runtime is caught."""
    fake = PACKAGE / "cgroups.py"
    assert not violations(fake)
    assert any("concept module" in v for v in
               _check_source(tmp_path, "cgroups.py", "from mini_runtime import runtime\n"))
    assert any("the CLI imports only" in v for v in
               _check_source(tmp_path, "cli.py", "from mini_runtime.backend import local\n"))


def _check_source(tmp_path: Path, name: str, text: str) -> list[str]:
    global REPO
    package = tmp_path / "mini_runtime"
    package.mkdir(exist_ok=True)
    (package / name).write_text(text)
    saved, REPO = REPO, tmp_path
    try:
        return violations(package / name)
    finally:
        REPO = saved
