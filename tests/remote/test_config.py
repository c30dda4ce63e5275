"""`[executor]` in pit_config.toml and a task's `resources`, as pit reads them."""

from __future__ import annotations

import pytest

from pit.spec.workspace import ExecutorConfig, ExecutorKind, parse_workspace_config
from tests.spec.tomltext import dag, parse, parse_ok, pit_toml, task, the_problem


def test_the_local_executor_is_the_default() -> None:
    config, problems = parse_workspace_config("")

    assert problems == []
    assert config.executor == ExecutorConfig(kind=ExecutorKind.LOCAL)


def test_a_dask_executor() -> None:
    text = (
        '[executor]\nkind = "dask"\nscheduler = "tcp://10.0.0.5:8786"\n'
        'callback = "10.0.0.2:9500"\nconnect_timeout = "10s"\n'
    )
    config, problems = parse_workspace_config(text)

    assert problems == []
    assert config.executor == ExecutorConfig(
        kind=ExecutorKind.DASK,
        scheduler="tcp://10.0.0.5:8786",
        callback="10.0.0.2:9500",
        connect_timeout=10.0,
    )


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('kind = "ray"', "kind", "'ray' is not an executor"),
        ('kind = "dask"', "scheduler", "needs its scheduler's address"),
        ('kind = "dask"\nscheduler = "tcp://a:1"\nscheduler_file = "s.json"', "scheduler", "one"),
        ('kind = "dask"\nscheduler = "tcp://a:1"\nworkers = 3', "workers", "unknown"),
        ('kind = "dask"\nscheduler = "tcp://a:1"\ndata = "nfs"', "data", "not a way"),
        ('kind = "dask"\nscheduler = "tcp://a:1"\ncallback = "h:70000"', "callback", "reach"),
    ],
)
def test_executor_mistakes_are_named(text: str, key: str, words: str) -> None:
    _, problems = parse_workspace_config(f"[executor]\n{text}\n")

    (problem,) = [p for p in problems if p.key.endswith(key)]
    assert problem.is_error
    assert words in f"{problem.message} {problem.fix}"


def test_task_resources_take_numbers_and_sizes() -> None:
    spec = parse_ok(
        pit_toml(dag(), task("a"), '[tasks.resources]\nmemory = "4GB"\ngpu = 1\nram = "1.5GiB"')
    )

    assert dict(spec.tasks[0].resources) == {"memory": 4e9, "gpu": 1.0, "ram": 1.5 * 2**30}


@pytest.mark.parametrize("amount", ['"lots"', "0", "-1", "true", '"4XB"', "nan", "inf"])
def test_a_resource_that_is_no_amount_is_a_problem(amount: str) -> None:
    _, problems = parse(pit_toml(dag(), task("a"), f"[tasks.resources]\nmemory = {amount}"))

    assert (
        "not an amount of a resource" in the_problem(problems, "tasks[0].resources.memory").message
    )
