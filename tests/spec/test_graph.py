"""`find_cycle` and `downstream` on plain dicts of name -> dependencies."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pit.spec.graph import downstream, find_cycle


def test_no_cycle_in_a_chain() -> None:
    assert find_cycle({"extract": [], "validate": ["extract"], "load": ["validate"]}) is None


def test_no_cycle_in_a_diamond() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) is None


def test_empty_graph() -> None:
    assert find_cycle({}) is None


def test_cycle_is_a_closed_path_in_dependency_order() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]


def test_cycle_path_leaves_out_the_way_into_the_cycle() -> None:
    cycle = find_cycle({"start": ["x"], "x": ["y"], "y": ["z"], "z": ["x"]})

    assert cycle == ["x", "y", "z", "x"]


def test_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_unknown_dependencies_are_ignored() -> None:
    assert find_cycle({"a": ["missing"], "b": ["a", "also_missing"]}) is None


def test_downstream_is_transitive() -> None:
    edges = {"extract": [], "validate": ["extract"], "load": ["validate"], "other": []}

    assert downstream(edges, "extract") == {"validate", "load"}
    assert downstream(edges, "validate") == {"load"}
    assert downstream(edges, "load") == set()


def test_downstream_through_a_diamond() -> None:
    edges = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}

    assert downstream(edges, "b") == {"d", "e"}
    assert downstream(edges, "a") == {"b", "c", "d", "e"}


def test_downstream_of_an_unknown_node_is_empty() -> None:
    assert downstream({"a": []}, "nope") == set()


def test_downstream_ends_on_a_cycle() -> None:
    assert downstream({"a": ["b"], "b": ["a"], "c": ["a"]}, "a") == {"a", "b", "c"}


@st.composite
def dags_in_topological_order(draw: st.DrawFn) -> dict[str, list[str]]:
    """Each node depends only on nodes made before it, so there can be no cycle."""
    size = draw(st.integers(min_value=0, max_value=12))
    names = [f"t{i}" for i in range(size)]
    edges: dict[str, list[str]] = {}
    for index, name in enumerate(names):
        edges[name] = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
    order = draw(st.permutations(names))  # dict order must not matter
    return {name: edges[name] for name in order}


@settings(max_examples=200, database=None)
@given(dags_in_topological_order())
def test_find_cycle_is_none_for_any_dag(edges: dict[str, list[str]]) -> None:
    assert find_cycle(edges) is None


@settings(max_examples=200, database=None)
@given(dags_in_topological_order())
def test_downstream_never_contains_the_node_in_a_dag(edges: dict[str, list[str]]) -> None:
    for node in edges:
        below = downstream(edges, node)
        assert node not in below
        assert all(node not in downstream(edges, other) for other in below)


names = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@settings(max_examples=200, database=None)
@given(st.dictionaries(names, st.lists(names, max_size=4), max_size=6))
def test_find_cycle_returns_a_real_closed_path(edges: dict[str, list[str]]) -> None:
    cycle = find_cycle(edges)
    if cycle is None:
        # No cycle: the nodes can be put in an order where each comes after its dependencies.
        placed: set[str] = set()
        remaining = dict(edges)
        while remaining:
            ready = [
                n
                for n, deps in remaining.items()
                if all(d in placed or d not in edges for d in deps)
            ]
            assert ready, f"find_cycle missed the cycle among {sorted(remaining)}"
            for node in ready:
                placed.add(node)
                del remaining[node]
        return
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle: no node twice
    for node, dependency in itertools.pairwise(cycle):
        assert dependency in edges[node]
