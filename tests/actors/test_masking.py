"""Secret values masked in task output, whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pit.actors.masking import MASK, Masker
from pit.spec.secrets import parse_secrets


def mask_in_chunks(values: list[str], data: bytes, cuts: list[int]) -> bytes:
    masker = Masker(values)
    out, start = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out.append(masker.feed(data[start:cut]))
        start = max(start, cut)
    out.append(masker.feed(data[start:]))
    out.append(masker.flush())
    return b"".join(out)


def test_a_secret_is_replaced_in_one_chunk() -> None:
    assert mask_in_chunks(["hunter22"], b"password is hunter22!\n", []) == b"password is ***!\n"


def test_a_secret_split_across_chunks_and_lines_is_replaced() -> None:
    data = b"token=s3cr3t-v4lue\nagain s3cr3t-v4lue"
    for cut in range(len(data) + 1):
        assert mask_in_chunks(["s3cr3t-v4lue"], data, [cut]) == b"token=***\nagain ***"


def test_short_values_are_not_masked() -> None:
    assert mask_in_chunks(["abc", "true"], b"abc true", []) == b"abc ***"


def test_the_longest_of_overlapping_secrets_wins() -> None:
    assert mask_in_chunks(["abcd", "abcdefgh"], b"xabcdefghx abcdx", [3, 6]) == b"x***x ***x"


def test_without_secrets_output_passes_unchanged() -> None:
    masker = Masker([])
    assert not masker.active
    assert masker.feed(b"anything") == b"anything"


@given(
    secret=st.text(alphabet="ab", min_size=4, max_size=8),
    data=st.binary(max_size=60).map(
        lambda b: b.replace(b"a", b"").replace(b"b", b"").replace(b"*", b"")
    ),
    inserts=st.lists(st.integers(min_value=0, max_value=60), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_no_chunking_lets_a_secret_through(
    secret: str, data: bytes, inserts: list[int], cuts: list[int]
) -> None:
    # Secrets go in at places of the original data, which holds no 'a' or 'b', so each one
    # stands whole and apart from the others.
    pieces, start = [], 0
    for position in sorted(p % (len(data) + 1) for p in inserts):
        pieces += [data[start:position], secret.encode()]
        start = position
    pieces.append(data[start:])
    masked = mask_in_chunks([secret], b"".join(pieces), cuts)
    assert secret.encode() not in masked
    assert masked.count(MASK) == len(inserts)


@given(
    secrets=st.lists(st.text(alphabet="abc", min_size=4, max_size=7), min_size=1, max_size=3),
    data=st.text(alphabet="abc\n", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_chunked_output_is_masked_as_the_whole_would_be(
    secrets: list[str], data: str, cuts: list[int]
) -> None:
    """However the output is cut into chunks, what comes out is the whole output masked at
    once (overlapping values, values that begin others, values cut anywhere)."""
    whole = Masker(secrets).mask(data).encode()
    assert mask_in_chunks(secrets, data.encode(), cuts) == whole


def test_output_that_cannot_begin_a_secret_is_released_at_once() -> None:
    """A line is not held back for the length of the longest secret (live logs would lag a
    line behind): only an end that could be the start of a value waits for the next chunk."""
    masker = Masker(["hook-token-4711"])
    assert masker.feed(b"first\n") == b"first\n"
    assert masker.feed(b"the token: hook-") == b"the token: "
    assert masker.feed(b"token-4711 done\n") == b"*** done\n"
    assert masker.flush() == b""


def test_a_whole_message_is_masked_at_once() -> None:
    masker = Masker(["hunter22", "pa55word"])
    assert masker.mask("login hunter22 failed, pa55word\ud800") == "login *** failed, ***\ud800"
    assert Masker([]).mask("as is") == "as is"


def test_the_sensitive_values_of_a_secrets_file_are_masked_in_output() -> None:
    secrets, _ = parse_secrets(
        '[global.db]\nhost = "db.example.com"\nport = "5432"\npassword = "pa\\"55word"\n',
        "secrets.toml",
    )
    printed = b'connecting to db.example.com:5432 with pa"55word; json: {"password": "pa\\"55word"}'
    assert mask_in_chunks(list(secrets.values()), printed, [20, 45]) == (
        b'connecting to db.example.com:5432 with ***; json: {"password": "***"}'
    )
