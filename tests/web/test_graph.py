"""The dashboard's task graph layout (`pit.web.graph`): columns, order, no overlap."""

from __future__ import annotations

import itertools

from pit.web.graph import NODE_HEIGHT, GraphJson, layout


def columns(graph: GraphJson) -> dict[str, int]:
    return {node["name"]: node["column"] for node in graph["nodes"]}


def test_each_task_stands_in_the_column_of_its_longest_path() -> None:
    graph = layout((("a", ()), ("b", ("a",)), ("c", ("b",)), ("d", ("a", "c")), ("e", ())))
    assert columns(graph) == {"a": 0, "e": 0, "b": 1, "c": 2, "d": 3}
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        ("a", "b"),
        ("b", "c"),
        ("a", "d"),
        ("c", "d"),
    }
    xs = {node["column"]: node["x"] for node in graph["nodes"]}
    assert xs[0] < xs[1] < xs[2] < xs[3]


def test_boxes_of_a_column_do_not_overlap_and_fit_the_drawing() -> None:
    graph = layout(tuple([("root", ())] + [(f"t{i}", ("root",)) for i in range(50)]))
    ys = sorted(node["y"] for node in graph["nodes"] if node["column"] == 1)
    assert all(later - earlier >= NODE_HEIGHT for earlier, later in itertools.pairwise(ys))
    for node in graph["nodes"]:
        assert node["y"] >= 0
        assert node["y"] + node["height"] <= graph["height"]
        assert node["x"] >= 0
        assert node["x"] + node["width"] <= graph["width"]


def test_the_order_in_a_column_follows_the_column_before_to_avoid_crossings() -> None:
    # b's child is listed first, a's second: sweeping puts each under its parent's row.
    graph = layout((("a", ()), ("b", ()), ("under_b", ("b",)), ("under_a", ("a",))))
    rows = {node["name"]: node["y"] for node in graph["nodes"]}
    assert rows["under_a"] < rows["under_b"]


def test_a_long_chain_is_laid_out_without_recursion() -> None:
    chain = tuple((f"t{i}", (f"t{i - 1}",) if i else ()) for i in range(3000))
    graph = layout(chain)
    assert columns(graph)["t2999"] == 2999


def test_a_name_too_long_widens_its_box_up_to_a_cap() -> None:
    short, long = layout((("a", ()), ("x" * 200, ())))["nodes"]
    assert short["width"] == long["width"]  # one column: one width, the widest's
    assert long["width"] < 200 * 5
