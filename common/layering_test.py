"""common/ is the library under the reproductions: it imports nothing from reproductions/ (issue 16).

What common needs from the papers (the ablations the comparison reports, ...) is handed in by
the caller, the commands of reproductions/ (reproductions/registry.py). Parsed, never imported:
a module that imports reproductions/ only inside a function is caught too.
"""
import ast
from pathlib import Path

COMMON = Path(__file__).resolve().parent


def library_modules():
    return sorted(p for p in COMMON.rglob("*.py") if not p.name.endswith("_test.py") and p.name != "conftest.py")


def imports_of_reproductions(path: Path) -> list[str]:
    """'line N: statement' for every import of `reproductions` (import, from-import, or
    importlib.import_module / __import__ with a literal name) anywhere in the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) in
                   ("import_module", "__import__"))):
            names = [node.args[0].value]
        if any(n == "reproductions" or n.startswith("reproductions.") for n in names):
            found.append((node.lineno, f"line {node.lineno}: {ast.unparse(node)}"))
    return [text for _, text in sorted(found)]


def test_common_imports_nothing_from_reproductions():
    modules = library_modules()
    assert len(modules) > 20 and COMMON / "train.py" in modules and COMMON / "datasets" / "base.py" in modules
    offenders = {str(p.relative_to(COMMON.parent)): hits for p in modules if (hits := imports_of_reproductions(p))}
    assert offenders == {}, ("common/ must not import reproductions/; have the caller hand the values in "
                             f"(reproductions/registry.py): {offenders}")


def test_the_check_sees_every_form_of_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nimport reproductions.ablations\nfrom reproductions import registry\n"
                      "from .reproductions import x\n\ndef f():\n    from reproductions.ablations import ABLATIONS\n"
                      "    importlib.import_module('reproductions.larson18')\n    __import__('reproductions')\n"
                      "    import reproductions_extra\n")
    assert [hit.split(":")[0] for hit in imports_of_reproductions(module)] == [
        "line 2", "line 3", "line 7", "line 8", "line 9"]
