"""The admission rules of pit serve as plain functions: overlap, the max_active_runs cap, the
bounded wait list, stopping. No loop, no process, no socket."""

from __future__ import annotations

from pit.actors.admission import Accept, Admission, Drop, Refuse, Start
from pit.spec.dag import Overlap


def accept(admission: Admission, run_id: str, dag: str, overlap: Overlap) -> Start | None:
    """Request a run, expect it accepted, and admit it under `run_id`."""
    verdict = admission.consider(dag, overlap)
    assert isinstance(verdict, Accept), verdict
    return admission.admit(run_id, dag, overlap)


def refused(admission: Admission, dag: str, overlap: Overlap | None) -> str:
    verdict = admission.consider(dag, overlap)
    assert isinstance(verdict, Refuse), verdict
    return verdict.reason


def test_a_run_starts_at_once_and_ends() -> None:
    admission = Admission()
    assert accept(admission, "r1", "etl", Overlap.SKIP) == Start(run_id="r1")
    assert admission.active_runs() == ["r1"]
    assert admission.ended("r1") == []
    assert admission.idle


def test_an_unknown_dag_is_refused() -> None:
    assert refused(Admission(), "nosuch", None) == "unknown"


def test_skip_refuses_while_a_run_of_the_dag_is_active() -> None:
    admission = Admission()
    accept(admission, "r1", "etl", Overlap.SKIP)
    assert refused(admission, "etl", Overlap.SKIP) == "overlap"
    assert accept(admission, "o1", "other", Overlap.SKIP) == Start(run_id="o1")
    admission.ended("r1")
    assert accept(admission, "r2", "etl", Overlap.SKIP) == Start(run_id="r2")


def test_queue_keeps_one_waiting_and_starts_it_when_the_active_one_ends() -> None:
    admission = Admission()
    accept(admission, "r1", "etl", Overlap.QUEUE)
    assert accept(admission, "r2", "etl", Overlap.QUEUE) is None
    assert refused(admission, "etl", Overlap.QUEUE) == "overlap"
    assert admission.waiting_runs() == ["r2"]
    assert admission.ended("r1") == [Start(run_id="r2")]


def test_latest_keeps_only_the_newest_waiting_run() -> None:
    admission = Admission()
    accept(admission, "r1", "etl", Overlap.LATEST)
    assert accept(admission, "r2", "etl", Overlap.LATEST) is None
    assert admission.supersede("r2", "etl") == []
    assert accept(admission, "r3", "etl", Overlap.LATEST) is None
    assert admission.supersede("r3", "etl") == [Drop(run_id="r2")]
    assert admission.waiting_runs() == ["r3"]
    assert admission.ended("r1") == [Start(run_id="r3")]
    assert admission.supersede("r3", "etl") == []  # it runs: nothing waits behind it


def test_allow_runs_concurrently() -> None:
    admission = Admission()
    starts = [accept(admission, f"r{n}", "etl", Overlap.ALLOW) for n in range(3)]
    assert starts == [Start(run_id=f"r{n}") for n in range(3)]


def test_max_active_runs_makes_runs_wait_in_order_of_acceptance() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", Overlap.ALLOW)
    assert accept(admission, "b1", "b", Overlap.ALLOW) is None
    assert accept(admission, "c1", "c", Overlap.ALLOW) is None
    assert admission.ended("a1") == [Start(run_id="b1")]
    assert admission.ended("b1") == [Start(run_id="c1")]


def test_a_skip_dag_waiting_for_a_slot_is_not_accepted_twice() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", Overlap.ALLOW)
    assert accept(admission, "b1", "b", Overlap.SKIP) is None
    assert refused(admission, "b", Overlap.SKIP) == "overlap"


def test_a_queue_dag_waiting_for_a_slot_keeps_at_most_one_more_waiting() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", Overlap.ALLOW)
    assert accept(admission, "b1", "b", Overlap.QUEUE) is None  # waits for a slot
    assert accept(admission, "b2", "b", Overlap.QUEUE) is None  # queued behind b1
    assert refused(admission, "b", Overlap.QUEUE) == "overlap"
    assert admission.ended("a1") == [Start(run_id="b1")]
    assert admission.ended("b1") == [Start(run_id="b2")]


def test_the_wait_list_is_bounded() -> None:
    admission = Admission(max_active_runs=1, max_queued_runs=2)
    accept(admission, "r1", "etl", Overlap.ALLOW)
    accept(admission, "r2", "etl", Overlap.ALLOW)
    accept(admission, "r3", "etl", Overlap.ALLOW)
    assert refused(admission, "etl", Overlap.ALLOW) == "busy"
    admission.ended("r1")
    assert isinstance(admission.consider("etl", Overlap.ALLOW), Accept)


def test_stop_refuses_new_runs_and_drops_the_waiting_ones() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "r1", "etl", Overlap.ALLOW)
    accept(admission, "r2", "etl", Overlap.ALLOW)

    assert admission.stop() == [Drop(run_id="r2")]
    assert refused(admission, "etl", Overlap.ALLOW) == "stopping"
    assert admission.ended("r1") == []
    assert admission.idle


def test_a_waiting_run_that_will_not_start_frees_its_place() -> None:
    admission = Admission(max_active_runs=1, max_queued_runs=1)
    accept(admission, "r1", "etl", Overlap.ALLOW)
    accept(admission, "r2", "etl", Overlap.ALLOW)
    assert admission.ended("r2") == []  # e.g. its DAG was removed by a reload
    assert admission.waiting_runs() == []
    assert admission.ended("r1") == []
