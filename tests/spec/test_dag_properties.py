"""`parse_dag` turns any text into problems; it never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pit.spec.dag import DagSpec
from pit.spec.problems import Problem

from .tomltext import FILE, parse, value


def check_outcome(spec: DagSpec | None, problems: list[Problem]) -> None:
    assert spec is not None or problems, "no spec must come with a reason"
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.file == FILE
        assert problem.message


@settings(max_examples=200, database=None)
@given(st.text())
def test_parse_dag_never_raises_on_arbitrary_text(text: str) -> None:
    check_outcome(*parse(text))


KEYS = [
    "name", "script", "runner", "depends_on", "timeout", "retries", "retry_delay", "retry_backoff",
    "schedule", "overlap", "keep_artifacts", "max_active_tasks", "git_url", "git_ref", "secret",
    "host", "user", "password_secret", "directory", "port", "tls", "poll_interval", "token_secret",
    "version", "adapter", "connection", "project_dir", "type", "location", "recipients", "retires",
]  # fmt: skip
HEADERS = [
    "[dag]", "[[tasks]]", "[[outputs]]", "[dag.sql]", "[dag.dbt]", "[dag.ftp_watch]",
    "[dag.webhook]", "[[dag.webhook]]", "[tasks]", "[other]",
]  # fmt: skip
scalars = st.one_of(
    st.sampled_from(
        ["etl", "a", "b", "a.py", "x.js", "$ node", "$", "dbt", "30s", "1h30m", "skip"]
    ),
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
lines = st.one_of(
    st.sampled_from(HEADERS),
    st.builds(lambda key, item: f"{key} = {value(item)}", st.sampled_from(KEYS), values),
)


@settings(max_examples=200, database=None)
@given(st.lists(lines, max_size=25))
def test_parse_dag_never_raises_on_pit_toml_shaped_text(parts: list[str]) -> None:
    """Mostly-valid TOML with pit's own keys in odd places and of odd types."""
    check_outcome(*parse("\n".join(parts)))


def test_parse_dag_reports_deeply_nested_toml_as_a_problem() -> None:
    # Python's tomllib recurses once per nesting level; bad input must still become a problem.
    text = "x = " + "[" * 2000 + "]" * 2000 + "\n"

    spec, problems = parse(text)

    assert spec is None
    assert problems
