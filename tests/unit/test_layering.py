"""Import directions and public seams, as DESIGN.md's lifecycle rules set them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import trio_resilience

PACKAGE = Path(trio_resilience.__file__).parent

# The layer of each part of the package; a layer may import only the layers listed.
PRIMITIVES = "primitives"
LAYERS: dict[str, set[str]] = {
    PRIMITIVES: {PRIMITIVES},
    "redis": {PRIMITIVES, "redis"},
    "jobs": {PRIMITIVES, "redis", "jobs"},
    "server": {PRIMITIVES, "redis", "jobs", "server"},
    "client": {PRIMITIVES, "client"},
    "testing": {PRIMITIVES, "redis", "jobs", "server", "client", "testing"},
    "cli": {PRIMITIVES, "redis", "jobs", "server", "cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return PRIMITIVES  # the package root: primitives, client names loaded lazily
    top = parts[1]
    if top in ("client", "server", "jobs", "testing", "redis"):
        return top
    if top in ("cli", "__main__", "_startup"):
        return "cli"
    return PRIMITIVES


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _own_imports() -> list[tuple[str, str, list[str]]]:
    result = []
    for path in _sources():
        for target, names in _imports(path):
            if target == "trio_resilience" or target.startswith("trio_resilience."):
                result.append((_module_name(path), target, names))
    return result


def test_the_scan_sees_every_layer() -> None:
    """The scan finds imports in every layer (finding none would prove nothing)."""
    layers = {_layer(module) for module, _target, _names in _own_imports()}
    assert layers == set(LAYERS)


def test_layers_import_only_downwards() -> None:
    """Primitives import no client/server/jobs; server and jobs never the client."""
    wrong = [
        f"{module} -> {target}"
        for module, target, names in _own_imports()
        # the root names the client's exports for type checkers and loads them lazily
        if (
            not (module == "trio_resilience" and target == "trio_resilience.client")
            and _layer(target) not in LAYERS[_layer(module)]
        )
        # `from trio_resilience import X` takes X from the root, whose layer is the
        # primitives unless X is one of the client's lazily loaded names
        or (
            target == "trio_resilience"
            and "client" not in LAYERS[_layer(module)]
            and set(names) & trio_resilience._CLIENT_NAMES
        )
    ]
    assert wrong == []


def test_private_modules_and_names_stay_inside_their_package() -> None:
    """A `_private` module or name is imported only from inside its own package."""
    wrong = []
    for module, target, names in _own_imports():
        parts = target.split(".")
        candidates = [(parts[: i + 1], parts[i]) for i in range(1, len(parts))]
        candidates += [([*parts, name], name) for name in names]
        for path, last in candidates:
            if not last.startswith("_") or last.startswith("__"):
                continue
            owner = ".".join(path[:-1])  # the package the private part belongs to
            if not (module == owner or module.startswith(owner + ".")):
                wrong.append(f"{module} -> {'.'.join(path)}")
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    """No two modules of the package import each other, directly or in a loop."""
    modules = {_module_name(path) for path in _sources()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, target, names in _own_imports():
        for candidate in [target, *(f"{target}.{name}" for name in names)]:
            # a package's __init__ re-exporting its own modules is not a cycle
            if (
                candidate in modules
                and candidate != module
                and not module.startswith(candidate + ".")
            ):
                graph[module].add(candidate)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path
                if nxt not in path and nxt.startswith("trio_resilience"):
                    stack.append((nxt, [*path, nxt]))
        return None

    # packages import their submodules; only cycles among leaf modules matter
    leaves = {m for m in modules if not any(o.startswith(m + ".") for o in modules)}
    graph = {m: {t for t in ts if t in leaves} for m, ts in graph.items()}
    cycles = {m: c for m in leaves if (c := cycle_from(m)) is not None}
    assert cycles == {}


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import trio_resilience", ["httpx", "trio_resilience.client", "quart"]),
        ("import trio_resilience.server", ["httpx", "trio_resilience.client"]),
        ("import trio_resilience.jobs", ["httpx", "trio_resilience.server", "quart"]),
        ("from trio_resilience import retry, CircuitBreaker", ["httpx"]),
    ],
)
def test_importing_a_layer_loads_nothing_above_it(
    statement: str, absent: list[str]
) -> None:
    """In a fresh interpreter, importing a layer leaves the layers above unloaded."""
    probe = (
        f"{statement}; import sys; print([m for m in {absent!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_client_names_load_on_first_use() -> None:
    """The root's client names resolve lazily and are the client's own objects."""
    import trio_resilience.client as client

    assert trio_resilience.ResilientClient is client.ResilientClient
    assert "ResilientClient" in dir(trio_resilience)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        trio_resilience.nope  # noqa: B018


def test_retry_names_the_function_and_modules_are_private() -> None:
    """`trio_resilience.retry` is the decorator; no public module shadows it."""
    import importlib.util

    assert callable(trio_resilience.retry)
    assert trio_resilience.retry.__module__ == "trio_resilience._retry"
    assert importlib.util.find_spec("trio_resilience.retry") is None


def test_version_comes_from_the_distribution() -> None:
    """__version__ is the installed distribution's version, not a second copy."""
    from importlib.metadata import version

    assert trio_resilience.__version__ == version("trio-resilience")
