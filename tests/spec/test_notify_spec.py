"""`[[dag.notify]]` as pit.toml writes it: each mistake a problem with its key."""

from __future__ import annotations

import pytest

from pit.spec.dag import parse_dag

BASE = '[dag]\nname = "etl"\n\n[[tasks]]\nname = "a"\nscript = "a.sh"\n\n[[dag.notify]]\n'


def test_a_notification_reads_back() -> None:
    dag, problems = parse_dag(
        BASE + 'on = ["failure", "retry"]\nchannel = "webhook"\nurl = "https://x/y"\n', "p.toml"
    )
    assert problems == []
    assert dag is not None
    (spec,) = dag.notify
    assert (spec.on, spec.channel, spec.url, spec.retries, spec.timeout) == (
        ("failure", "retry"),
        "webhook",
        "https://x/y",
        3,
        30.0,
    )


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ('channel = "webhook"\nurl = "u"\n', "dag.notify[0].on", "is required"),
        ('on = ["boom"]\nchannel = "webhook"\nurl = "u"\n', "dag.notify[0].on", "is not an event"),
        ('on = ["failure"]\nchannel = "pager"\n', "dag.notify[0].channel", "is not a channel"),
        ('on = ["failure"]\nchannel = "webhook"\n', "dag.notify[0].channel", "needs url or"),
        ('on = ["failure"]\nchannel = "email"\nsecret = "s"\n', "dag.notify[0].channel", "needs"),
        ('on = ["failure"]\nchannel = "command"\ncmd = "x"\n', "dag.notify[0].cmd", "unknown key"),
    ],
)
def test_a_bad_notification_is_a_problem(body: str, key: str, message: str) -> None:
    _, problems = parse_dag(BASE + body, "p.toml")
    assert any(p.key == key and message in p.message for p in problems), [str(p) for p in problems]
