"""The architecture's rules that the import contract (.importlinter) cannot state.

``lint-imports`` checks the layers and keeps kubernetes, kopf and the network clients
out of the core, but it sees the standard library's ``urllib`` only as a whole; the core
may percent-decode (``urllib.parse``) and must never open a connection.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modelmonitor"
CORE = PACKAGE / "core"
NETWORK_MODULES = ("urllib.request", "urllib.error", "urllib.response", "http", "socket", "ssl")


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "urllib":
                names.extend(f"urllib.{alias.name}" for alias in node.names)
            else:
                names.append(node.module)
    return names


def test_the_core_never_imports_a_network_module() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in _imported_modules(path)
        if name == "urllib" or any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES)
    ]
    assert offenders == []


def test_the_check_sees_a_network_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import urllib.parse\nfrom urllib import request\nimport http.client\n")
    assert _imported_modules(module) == ["urllib.parse", "urllib.request", "http.client"]


def _reads_environment(path: Path) -> list[int]:
    """Lines that touch ``os.environ`` / ``os.getenv`` (or import them by name)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv")) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_config_reads_the_environment() -> None:
    """Settings come from edge/config.py's OperatorConfig; nothing else reads os.environ."""
    config = PACKAGE / "edge" / "config.py"
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != config
        for line in _reads_environment(path)
    ]
    assert offenders == []
    assert _reads_environment(config), "the check no longer sees the config's own reads"


MAX_MODULE_LINES = 600
SIZE_ROOTS = (PACKAGE, PACKAGE.parents[1] / "tests")


def test_no_module_is_a_big_room_without_saying_why() -> None:
    """A module over MAX_MODULE_LINES lines must say in its docstring why it is one room
    (a sentence starting "One module because"); otherwise it splits along its seams."""
    offenders = []
    for root in SIZE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            text = path.read_text()
            doc = ast.get_docstring(ast.parse(text, str(path))) or ""
            if text.count("\n") > MAX_MODULE_LINES and "One module because" not in doc:
                offenders.append(f"{path.relative_to(root.parent)}: {text.count(chr(10))} lines")
    assert offenders == []
