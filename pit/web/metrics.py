"""`GET /metrics`: pit serve's counters in the Prometheus text format (version 0.0.4).

Written by hand: the format is a few lines of text, and the counters live in the supervisor's
`ServeMetrics`, so a client library would add a dependency and a second registry for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from pit.messages.web import TASK_SECONDS_BUCKETS, ServeMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(metrics: ServeMetrics) -> str:
    return "".join(f"{line}\n" for line in _lines(metrics))


def _lines(m: ServeMetrics) -> Iterator[str]:
    yield from _family("pit_runs_started_total", "counter", "Runs accepted, by DAG.")
    for dag, count in sorted(m.runs_started.items()):
        yield f"pit_runs_started_total{_labels(dag=dag)} {count}"
    yield from _family("pit_runs_finished_total", "counter", "Runs ended, by DAG and state.")
    for (dag, state), count in sorted(m.runs_finished.items()):
        yield f"pit_runs_finished_total{_labels(dag=dag, state=state)} {count}"
    yield from _family(
        "pit_task_duration_seconds", "histogram", "Task durations (first attempt to end)."
    )
    for dag, buckets in sorted(m.task_seconds.items()):
        running = 0
        for bound, count in zip([*TASK_SECONDS_BUCKETS, None], buckets, strict=True):
            running += count
            le = "+Inf" if bound is None else f"{bound:g}"
            yield f"pit_task_duration_seconds_bucket{_labels(dag=dag, le=le)} {running}"
        yield f"pit_task_duration_seconds_sum{_labels(dag=dag)} {m.task_seconds_sum.get(dag, 0)}"
        yield f"pit_task_duration_seconds_count{_labels(dag=dag)} {running}"
    yield from _family("pit_active_runs", "gauge", "Runs executing now.")
    yield f"pit_active_runs {m.active_runs}"
    yield from _family("pit_queued_runs", "gauge", "Runs accepted and waiting for their turn.")
    yield f"pit_queued_runs {m.queued_runs}"
    yield from _family(
        "pit_trigger_lag_seconds", "gauge", "Seconds from a DAG's last cron fire time to its run."
    )
    for dag, lag in sorted(m.trigger_lag.items()):
        yield f"pit_trigger_lag_seconds{_labels(dag=dag)} {lag:.6f}"
    yield from _family(
        "pit_executor_restarts_total", "counter", "Times the executor process ended unexpectedly."
    )
    yield f"pit_executor_restarts_total {m.executor_restarts}"


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"


def _labels(**labels: str) -> str:
    pairs = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return f"{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
