"""The package's layout is what the contributor guide says it is.

docs/contributing.rst lists every module of skae/, lowest first, with the skae
modules each imports; these tests read that table and the code's imports, so
neither can drift from the other.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skae"
GUIDE = ROOT / "docs" / "contributing.rst"
MAX_LINES = 800


def _layout_table():
    """``{module: set of imported modules}`` in the guide's order."""
    text = GUIDE.read_text()
    start = text.index(".. list-table::", text.index("Modules, lowest first"))
    end = text.index("\nWhere a change goes", start)
    rows = text[start:end].split("\n   * - ")[2:]  # skip options and header
    table = {}
    for row in rows:
        cells = row.split("\n     - ")
        assert len(cells) == 3, row
        (module,) = re.findall(r"``([\w.]+)``", cells[0])
        table[module] = set(re.findall(r"``([\w.]+)``", cells[2]))
    return table


def _skae_imports(path):
    """The skae modules ``path`` imports, at module level or inside functions."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                imported.add(node.module.split(".")[0])
            else:
                imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            parts = (node.module or "").split(".")
            if parts[0] == "skae" and len(parts) > 1:
                imported.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "skae" and len(parts) > 1:
                    imported.add(parts[1])
    return imported


def test_the_guide_lists_every_module_once():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert set(_layout_table()) == modules


def test_imports_are_those_the_guide_lists_and_run_one_way():
    table = _layout_table()
    order = list(table)
    for module, listed in table.items():
        actual = _skae_imports(PACKAGE / f"{module}.py")
        assert actual == listed, (module, actual)
        above = set(order[: order.index(module)])
        assert actual <= above, (module, actual - above)


def test_no_module_is_over_800_lines():
    lengths = {
        path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")
    }
    assert max(lengths.values()) <= MAX_LINES, lengths
