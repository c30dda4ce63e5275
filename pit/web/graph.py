"""A DAG's task graph laid out left to right, for the dashboard to draw as it is.

Layered drawing in the manner of Sugiyama: each task in the column of its longest path from a
task with no dependency, the tasks of a column ordered to cross few edges (barycentre sweeps,
down then up), columns as wide as their widest name, each column centred on the tallest. The
browser only draws boxes and curves at the places given: no layout library, and a 1,000-task DAG
is laid out once per DAG (cached), in milliseconds, not in every visitor's tab.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TypedDict

NODE_HEIGHT = 32
ROW_GAP = 12
COLUMN_GAP = 64
MIN_WIDTH = 96
MAX_WIDTH = 260
CHAR_WIDTH = 7.5
"""Pixels per character of a task name at the dashboard's 13px font (a generous average)."""
PADDING = 48
"""Pixels around a name in its box: the state's glyph before it, a margin after."""
SWEEPS = 4

Edges = tuple[tuple[str, tuple[str, ...]], ...]
"""Each task's name with the names it depends on, in the DAG's order."""


class NodeJson(TypedDict):
    name: str
    x: float
    y: float
    width: float
    height: float
    column: int


class EdgeJson(TypedDict):
    source: str
    target: str


class GraphJson(TypedDict):
    width: float
    height: float
    nodes: list[NodeJson]
    edges: list[EdgeJson]


@functools.lru_cache(maxsize=256)
def layout(edges: Edges) -> GraphJson:
    """Where each task goes; `edges` must be acyclic (a validated DAG)."""
    columns = _columns(edges)
    _order(columns, edges)
    widths = [
        max((min(MAX_WIDTH, max(MIN_WIDTH, len(n) * CHAR_WIDTH + PADDING)) for n in c), default=0)
        for c in columns
    ]
    tallest = max((len(column) for column in columns), default=0)
    height = tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP if tallest else 0
    nodes: list[NodeJson] = []
    x = 0.0
    for index, column in enumerate(columns):
        top = (height - (len(column) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP)) / 2
        for row, name in enumerate(column):
            nodes.append(
                {
                    "name": name,
                    "x": x,
                    "y": top + row * (NODE_HEIGHT + ROW_GAP),
                    "width": widths[index],
                    "height": NODE_HEIGHT,
                    "column": index,
                }
            )
        x += widths[index] + COLUMN_GAP
    return {
        "width": max(0.0, x - COLUMN_GAP),
        "height": float(height),
        "nodes": nodes,
        "edges": [{"source": dep, "target": name} for name, deps in edges for dep in deps],
    }


def _columns(edges: Edges) -> list[list[str]]:
    """Tasks by the length of their longest path from a root, in the DAG's order."""
    depends = dict(edges)
    depth: dict[str, int] = {}
    for name, _ in edges:
        stack = [name]
        while stack:  # iterative: a 1,000-task chain would overflow recursion
            top = stack[-1]
            pending = [d for d in depends.get(top, ()) if d not in depth and d in depends]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[top] = 1 + max((depth[d] for d in depends[top] if d in depth), default=-1)
    columns: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for name, _ in edges:
        columns[depth[name]].append(name)
    return columns


def _order(columns: list[list[str]], edges: Edges) -> None:
    """Reorder each column by the mean row of its neighbours in the column before (sweeping
    right) or after (sweeping left); ties keep their order."""
    parents = dict(edges)
    children: dict[str, list[str]] = {name: [] for name, _ in edges}
    for name, deps in edges:
        for dep in deps:
            children.setdefault(dep, []).append(name)
    for sweep in range(SWEEPS):
        rightwards = sweep % 2 == 0
        indices = range(1, len(columns)) if rightwards else range(len(columns) - 2, -1, -1)
        for index in indices:
            beside = columns[index - 1] if rightwards else columns[index + 1]
            row = {name: r for r, name in enumerate(beside)}
            links: Mapping[str, Sequence[str]] = parents if rightwards else children
            columns[index] = _by_barycentre(columns[index], links, row)


def _by_barycentre(
    column: list[str], links: Mapping[str, Sequence[str]], row: dict[str, int]
) -> list[str]:
    def key(item: tuple[int, str]) -> float:
        position, name = item
        rows = [row[n] for n in links.get(name, ()) if n in row]
        return sum(rows) / len(rows) if rows else float(position)

    return [name for _, name in sorted(enumerate(column), key=key)]
