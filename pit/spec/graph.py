"""The task graph: cycles, topological order, and what lies downstream of a task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle as a closed path `[a, b, c, a]` (a depends on b ...), or None if there is none.

    `edges` maps each node to the nodes it depends on; unknown targets are ignored (they are
    reported as missing dependencies elsewhere).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in edges:
        if colour[start] != white:
            continue
        path: list[str] = [start]
        stack = [iter(edges[start])]
        colour[start] = grey
        while stack:
            node = next(stack[-1], None)
            if node is None:
                colour[path.pop()] = black
                stack.pop()
                continue
            if node not in colour:
                continue
            if colour[node] == grey:
                return [*path[path.index(node) :], node]
            if colour[node] == white:
                colour[node] = grey
                path.append(node)
                stack.append(iter(edges[node]))
    return None


def downstream(edges: Mapping[str, Iterable[str]], node: str) -> set[str]:
    """Every node that depends on `node`, directly or through others."""
    dependants: dict[str, list[str]] = {n: [] for n in edges}
    for name, deps in edges.items():
        for dep in deps:
            dependants.setdefault(dep, []).append(name)
    seen: set[str] = set()
    todo = list(dependants.get(node, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(dependants.get(current, ()))
    return seen
