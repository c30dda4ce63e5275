"""The config surfaces under fuzzing: `pit.toml` and `pit_config.toml` text, generated and
mutated (`corpus.py`), never raise and never hang; what validates clean is ready to run.

Bounded for CI: a few hundred examples per test, each well under a second (`deadline`); the
whole module runs in a few seconds. `bench/fuzz_spec.py` runs the same property at volume.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import corpus

FUZZ = settings(
    max_examples=300,
    deadline=1000,  # ms per example: a hang shows as a deadline failure, not a stuck CI job
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SURFACES = list(corpus.CHECKS)
SEEDS = {surface: corpus.seeds(surface) for surface in SURFACES}


@pytest.mark.parametrize("surface", SURFACES)
def test_the_shipped_examples_validate_clean(surface: str) -> None:
    shipped = SEEDS[surface][: -8 or None]  # the generated seeds follow the shipped files
    assert shipped, f"no shipped {surface} found"
    for data in shipped:
        assert corpus.CHECKS[surface](data), "a shipped example must validate without errors"


@pytest.mark.parametrize("surface", SURFACES)
@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_generated_documents(surface: str, rng: random.Random) -> None:
    generate = corpus.generate_pit_toml if surface == "pit.toml" else corpus.generate_pit_config
    corpus.CHECKS[surface](generate(rng))


@pytest.mark.parametrize("surface", SURFACES)
@FUZZ
@given(rng=st.randoms(use_true_random=False), index=st.integers(min_value=0))
def test_mutated_seeds(surface: str, rng: random.Random, index: int) -> None:
    seeds = SEEDS[surface]
    corpus.CHECKS[surface](corpus.mutate(seeds[index % len(seeds)], rng))


toml_scalars = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.sampled_from(corpus.HOSTILE),
)


@pytest.mark.parametrize("surface", SURFACES)
@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(["[dag]", "[[tasks]]", "[dag.sql]", "[dag.ftp_watch]", "[[outputs]]"]),
            st.builds(
                lambda key, item: f"{key} = {corpus.toml_value(item)}",
                st.sampled_from(corpus.DAG_KEYS + corpus.TASK_KEYS + corpus.CONFIG_KEYS),
                st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3)),
            ),
        ),
        max_size=30,
    )
)
def test_structured_documents(surface: str, lines: list[str]) -> None:
    """Hypothesis's own values (any float, any integer, any text) in pit's keys."""
    corpus.CHECKS[surface]("\n".join(lines).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("surface", SURFACES)
@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(surface: str, data: bytes) -> None:
    corpus.CHECKS[surface](data)
