"""The package's layers, read from the source with `ast`: imports run one way only,
each I/O library is imported in one place, and there is no import cycle.

    foundation   errors, config, messages, tracing, logs, metrics, trace, reconcile (no I/O library)
    runtime      the actor runtime, on anyio only
    adapters     db (asyncpg), amqp (aio-pika), web (Quart, Hypercorn): never each other
    actors       what joins the database and the broker (relay, retention)
    services     orders, payments, gateway: never each other, but for the gateway
                 documenting the services' HTTP schemas
    entry        gozon.cli, gozon.dlq (its `dlq` command) and supervisors/: composition only
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FOUNDATION = {"gozon.errors", "gozon.config", "gozon.messages", "gozon.tracing", "gozon.logs", "gozon.metrics",
              "gozon.trace", "gozon.reconcile"}
LAYERS = [
    ("runtime", 1), ("db", 2), ("amqp", 2), ("web", 2), ("actors", 3),
    ("orders", 4), ("payments", 4), ("gateway", 4),
]
ENTRY = {"gozon.cli", "gozon.dlq"}
# Services that may be imported by another service: the HTTP schemas the gateway documents.
SHARED_SCHEMAS = {"gozon.orders.schemas", "gozon.payments.schemas"}

# Where each I/O library may be imported (path prefixes relative to the checkout).
HTTP_MODULES = ("gozon/web/", "gozon/orders/api.py", "gozon/payments/api.py", "gozon/gateway/api.py",
                "gozon/gateway/pages.py", "gozon/gateway/proxy.py")
LIBRARIES = {
    "asyncpg": ("gozon/db/",),
    "aio_pika": ("gozon/amqp/",),
    "aiormq": ("gozon/amqp/",),
    "pamqp": ("gozon/amqp/",),
    "quart": HTTP_MODULES,
    "hypercorn": HTTP_MODULES,
    "werkzeug": HTTP_MODULES,
    "httpx": ("gozon/gateway/proxy.py",),
    "aiohttp": ("gozon/gateway/proxy.py",),
    "asyncio": ("gozon/logs.py",),  # the runtime runs on trio too; nothing else needs asyncio itself
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("gozon/**/*.py"), *ROOT.glob("supervisors/*.py")]):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from gozon.db import outbox` imports gozon.db.outbox
                if f"{node.module}.{alias.name}" in MODULES:
                    yield node.lineno, f"{node.module}.{alias.name}"


def layer(module: str) -> tuple[str, int]:
    """(package, layer number) of one of our modules."""
    if module in FOUNDATION or module == "gozon":
        return "foundation", 0
    parts = module.split(".")
    if parts[0] == "supervisors" or module in ENTRY:
        return "entry", 5
    for package, number in LAYERS:
        if parts[1] == package:
            return package, number
    raise AssertionError(f"{module} belongs to no layer: add it to test_architecture's table")


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_imports_run_down_the_layers_only() -> None:
    breaches = []
    for module, path in MODULES.items():
        package, number = layer(module)
        for line, imported in imports(path):
            if imported not in MODULES:
                continue
            their_package, their_number = layer(imported)
            if their_package == package:
                continue
            sideways = their_number == number and package != "foundation"
            if their_number > number or (sideways and not (package == "gateway" and imported in SHARED_SCHEMAS)):
                breaches.append(f"{where(path, line)}: {package} imports {imported} ({their_package})")
    assert not breaches, "imports against the layers:\n" + "\n".join(breaches)


def test_each_io_library_is_imported_in_its_own_place_only() -> None:
    breaches = []
    for path in MODULES.values():
        relative = str(path.relative_to(ROOT))
        for line, imported in imports(path):
            allowed = LIBRARIES.get(imported.split(".")[0])
            if allowed is not None and not relative.startswith(allowed):
                breaches.append(f"{where(path, line)}: imports {imported} (allowed only in {', '.join(allowed)})")
    assert not breaches, "I/O libraries imported outside their place:\n" + "\n".join(breaches)


def test_the_runtime_imports_nothing_but_anyio_and_the_standard_library() -> None:
    allowed = {"anyio", "msgspec", "structlog", "gozon"} | set(sys.stdlib_module_names) - {"asyncio"}
    breaches = [f"{where(path, line)}: imports {imported}"
                for module, path in MODULES.items() if module.startswith("gozon.runtime")
                for line, imported in imports(path) if imported.split(".")[0] not in allowed]
    assert not breaches, "the runtime must run on trio too:\n" + "\n".join(breaches)


def test_task_groups_come_from_one_place() -> None:
    # anyio's own groups wrap a lone error in an ExceptionGroup, so an `except` around
    # them would miss it; runtime.tasks.task_group() unwraps it, the same everywhere.
    breaches = []
    for module, path in MODULES.items():
        if module == "gozon.runtime.tasks":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "create_task_group":
                breaches.append(where(path, node.lineno))
    assert not breaches, "use gozon.runtime.tasks.task_group() instead of anyio's:\n" + "\n".join(breaches)


def test_there_is_no_import_cycle() -> None:
    graph = {module: {imported for _, imported in imports(path) if imported in MODULES and imported != module}
             for module, path in MODULES.items()}
    # A package imports its own modules (its __init__ re-exports them): that is no cycle.
    graph = {module: {i for i in targets if not module.startswith(i + ".") and not i.startswith(module + ".")}
             for module, targets in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = visiting[visiting.index(module):] + [module]
            raise AssertionError("import cycle: " + " → ".join(cycle))
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_check_sees_a_breach() -> None:
    # The walk itself must find what it looks for: an SQL module importing aio-pika.
    tree = "import aio_pika\nfrom gozon.amqp.topology import ORDERS_QUEUE\n"
    found = [imported for node in ast.walk(ast.parse(tree)) for imported in
             ([a.name for a in node.names] if isinstance(node, ast.Import) else
              [node.module] if isinstance(node, ast.ImportFrom) else [])]
    assert found == ["aio_pika", "gozon.amqp.topology"]
    assert layer("gozon.amqp.topology")[1] > layer("gozon.messages")[1]
    assert not str(MODULES["gozon.orders.store"].relative_to(ROOT)).startswith(LIBRARIES["aio_pika"])
