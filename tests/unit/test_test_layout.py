"""The tests read like the product: what they share lives in helper modules named for
what they hold (tests/e2e/shopper.py, tests/browser/shop.py…), so no module of the
tests imports a test module (`test_*.py`) or a conftest.py, which pytest alone loads.
Read from the source with `ast`: nothing here imports the modules it checks."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOT_CONFTEST = "tests.conftest"
Rule = Callable[[str, Path], bool]


def module_file(root: Path, module: str) -> Path | None:
    """The file of `module` if it is one of root/tests (a package: its __init__.py)."""
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file() and root / "tests" in candidate.parents:
            return candidate
    return None


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every module `path` imports: `import a.b` imports a.b;
    `from a import b` imports a, and a.b as well when b is a module rather than a name
    in a. A relative import is resolved against the file's package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module:
                found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names
                      if module_file(root, f"{module}.{alias.name}")]
    return found


def offences(rule: Rule, root: Path = ROOT) -> list[str]:
    """"file:line imports module" for every import in root/tests that `rule` refuses."""
    return [f"{path.relative_to(root)}:{line} imports {module}"
            for path in sorted((root / "tests").rglob("*.py"))
            for line, module in imported_modules(root, path)
            if (file := module_file(root, module)) is not None and rule(module, file)]


def is_test_module(module: str, file: Path) -> bool:
    return file.name.startswith("test_")


def is_package_conftest(module: str, file: Path) -> bool:
    return file.name == "conftest.py" and module != ROOT_CONFTEST


def is_root_conftest(module: str, file: Path) -> bool:
    return module == ROOT_CONFTEST


def test_no_module_imports_a_test_module() -> None:
    """A test shares nothing but fixtures; a step several tests take is a helper (e.g.
    tests/e2e/scenarios.py), not another test called as a function."""
    assert offences(is_test_module) == []


def test_no_module_imports_a_package_conftest() -> None:
    """A package's conftest.py holds its fixtures only; its helpers live beside it."""
    assert offences(is_package_conftest) == []


def test_no_module_imports_the_root_conftest() -> None:
    assert offences(is_root_conftest) == []


def test_each_kind_of_import_is_seen(tmp_path: Path) -> None:
    """Absolute, from-a-package and relative imports of a test module or a conftest are
    all caught, and named by file and line; a helper module's import is not."""
    e2e = tmp_path / "tests" / "e2e"
    e2e.mkdir(parents=True)
    for name in ("__init__", "conftest", "test_scenarios", "test_trace", "shopper", "helper"):
        (e2e / f"{name}.py").write_text("")
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "conftest.py").write_text("")
    (e2e / "helper.py").write_text("import tests.e2e.test_scenarios\n"
                                   "from tests.e2e import conftest, shopper\n"
                                   "from . import test_trace as trace\n"
                                   "from .shopper import Shopper\n"
                                   "from ..conftest import TEST_SETTINGS\n")
    assert imported_modules(tmp_path, e2e / "helper.py") == [
        (1, "tests.e2e.test_scenarios"), (2, "tests.e2e"), (2, "tests.e2e.conftest"), (2, "tests.e2e.shopper"),
        (3, "tests.e2e"), (3, "tests.e2e.test_trace"), (4, "tests.e2e.shopper"), (5, "tests.conftest")]
    assert offences(is_test_module, tmp_path) == ["tests/e2e/helper.py:1 imports tests.e2e.test_scenarios",
                                                  "tests/e2e/helper.py:3 imports tests.e2e.test_trace"]
    assert offences(is_package_conftest, tmp_path) == ["tests/e2e/helper.py:2 imports tests.e2e.conftest"]
    assert offences(is_root_conftest, tmp_path) == ["tests/e2e/helper.py:5 imports tests.conftest"]
