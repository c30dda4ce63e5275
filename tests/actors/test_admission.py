"""The admission rules of pit serve as plain functions: overlap, the max_active_runs cap, the
bounded wait list, stopping. No loop, no process, no socket."""

from __future__ import annotations

from pit.actors.admission import Accept, Admission, Drop, Refuse, Start


def accept(admission: Admission, run_id: str, dag: str, overlap: str) -> Start | None:
    """Request a run, expect it accepted, and admit it under `run_id`."""
    verdict = admission.consider(dag, overlap)
    assert isinstance(verdict, Accept), verdict
    return admission.admit(run_id, dag, overlap)


def refused(admission: Admission, dag: str, overlap: str | None) -> str:
    verdict = admission.consider(dag, overlap)
    assert isinstance(verdict, Refuse), verdict
    return verdict.reason


def test_a_run_starts_at_once_and_ends() -> None:
    admission = Admission()
    assert accept(admission, "r1", "etl", "skip") == Start(run_id="r1")
    assert admission.active_runs() == ["r1"]
    assert admission.ended("r1") == []
    assert admission.idle


def test_an_unknown_dag_is_refused() -> None:
    assert refused(Admission(), "nosuch", None) == "unknown"


def test_skip_refuses_while_a_run_of_the_dag_is_active() -> None:
    admission = Admission()
    accept(admission, "r1", "etl", "skip")
    assert refused(admission, "etl", "skip") == "overlap"
    assert accept(admission, "o1", "other", "skip") == Start(run_id="o1")
    admission.ended("r1")
    assert accept(admission, "r2", "etl", "skip") == Start(run_id="r2")


def test_queue_keeps_one_waiting_and_starts_it_when_the_active_one_ends() -> None:
    admission = Admission()
    accept(admission, "r1", "etl", "queue")
    assert accept(admission, "r2", "etl", "queue") is None
    assert refused(admission, "etl", "queue") == "overlap"
    assert admission.waiting_runs() == ["r2"]
    assert admission.ended("r1") == [Start(run_id="r2")]


def test_allow_runs_concurrently() -> None:
    admission = Admission()
    starts = [accept(admission, f"r{n}", "etl", "allow") for n in range(3)]
    assert starts == [Start(run_id=f"r{n}") for n in range(3)]


def test_max_active_runs_makes_runs_wait_in_order_of_acceptance() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", "allow")
    assert accept(admission, "b1", "b", "allow") is None
    assert accept(admission, "c1", "c", "allow") is None
    assert admission.ended("a1") == [Start(run_id="b1")]
    assert admission.ended("b1") == [Start(run_id="c1")]


def test_a_skip_dag_waiting_for_a_slot_is_not_accepted_twice() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", "allow")
    assert accept(admission, "b1", "b", "skip") is None
    assert refused(admission, "b", "skip") == "overlap"


def test_a_queue_dag_waiting_for_a_slot_keeps_at_most_one_more_waiting() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "a1", "a", "allow")
    assert accept(admission, "b1", "b", "queue") is None  # waits for a slot
    assert accept(admission, "b2", "b", "queue") is None  # queued behind b1
    assert refused(admission, "b", "queue") == "overlap"
    assert admission.ended("a1") == [Start(run_id="b1")]
    assert admission.ended("b1") == [Start(run_id="b2")]


def test_the_wait_list_is_bounded() -> None:
    admission = Admission(max_active_runs=1, max_queued_runs=2)
    accept(admission, "r1", "etl", "allow")
    accept(admission, "r2", "etl", "allow")
    accept(admission, "r3", "etl", "allow")
    assert refused(admission, "etl", "allow") == "busy"
    admission.ended("r1")
    assert isinstance(admission.consider("etl", "allow"), Accept)


def test_stop_refuses_new_runs_and_drops_the_waiting_ones() -> None:
    admission = Admission(max_active_runs=1)
    accept(admission, "r1", "etl", "allow")
    accept(admission, "r2", "etl", "allow")

    assert admission.stop() == [Drop(run_id="r2")]
    assert refused(admission, "etl", "allow") == "stopping"
    assert admission.ended("r1") == []
    assert admission.idle


def test_a_waiting_run_that_will_not_start_frees_its_place() -> None:
    admission = Admission(max_active_runs=1, max_queued_runs=1)
    accept(admission, "r1", "etl", "allow")
    accept(admission, "r2", "etl", "allow")
    assert admission.ended("r2") == []  # e.g. its DAG was removed by a reload
    assert admission.waiting_runs() == []
    assert admission.ended("r1") == []
