"""The import graph: no circle through config.py, models/, data/ or publish/ (imports under
TYPE_CHECKING count). `lint-imports` (.ci/run) checks the layers of
pyproject.toml's [tool.importlinter]; this test names the circles themselves."""

from __future__ import annotations

import grimp


def import_circles(package: str = "asrtune") -> list[set[str]]:
    """Every set of modules that import each other round (strongly connected components
    of the import graph with more than one module), TYPE_CHECKING imports included."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in imports[module]:
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(component)

    for module in sorted(imports):
        if module not in order:
            visit(module)
    return circles


def test_no_import_circle_through_config_models_data_or_publish() -> None:
    def involved(circle: set[str]) -> bool:
        return (
            "asrtune.config" in circle
            or any(m == "asrtune.models" or m.startswith("asrtune.models.") for m in circle)
            or any(m.startswith("asrtune.data.") for m in circle)
            or any(m.startswith("asrtune.publish") for m in circle)
        )

    assert not [sorted(c) for c in import_circles() if involved(c)]
