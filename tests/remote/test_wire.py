"""The frames pit and a worker's runner exchange, and the project tarball's identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pit.remote.tarballs import pack_project
from pit.remote.wire import (
    MAX_FRAME,
    Kind,
    Reader,
    RemoteAttempt,
    WireError,
    frame,
    sign,
    token_ok,
)

FRAMES = st.lists(
    st.tuples(
        st.sampled_from(list(Kind)),
        st.integers(min_value=0, max_value=2**32 - 1),
        st.binary(max_size=300),
    ),
    max_size=8,
)


@given(FRAMES, st.lists(st.integers(min_value=1, max_value=50), min_size=1))
def test_frames_come_out_whole_however_the_bytes_are_cut(
    frames: list[tuple[Kind, int, bytes]], cuts: list[int]
) -> None:
    data = b"".join(frame(kind, channel, payload) for kind, channel, payload in frames)
    reader, out, position = Reader(), [], 0
    for size in cuts * (len(data) // sum(cuts) + 1):
        out += reader.feed(data[position : position + size])
        position += size
    assert out == frames


def test_an_oversized_or_unknown_frame_is_refused() -> None:
    with pytest.raises(WireError, match="a frame of"):
        Reader().feed((MAX_FRAME + 1).to_bytes(4, "big") + b"\x05" + bytes(4))
    with pytest.raises(WireError, match="unknown frame kind 99"):
        Reader().feed(b"\x00\x00\x00\x00\x63" + bytes(4))


def test_a_token_is_good_for_its_attempt_and_its_secret_only() -> None:
    secret = os.urandom(32)
    token = sign(secret, "run/task/1")

    assert token_ok(secret, "run/task/1", token)
    assert not token_ok(secret, "run/task/2", token)
    assert not token_ok(os.urandom(32), "run/task/1", token)
    assert not token_ok(secret, "run/task/1", None)


def test_the_same_files_make_the_same_tarball(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, when in ((first, 1_000_000_000), (second, 1_700_000_000)):
        (folder / "tasks").mkdir(parents=True)
        (folder / "tasks" / "x.sh").write_text("echo x\n")
        (folder / "pit.toml").write_text("[dag]\n")
        for path in (folder / "tasks" / "x.sh", folder / "pit.toml"):
            os.utime(path, (when, when))

    assert pack_project(first) == pack_project(second)
    (second / "pit.toml").write_text("[dag]\nname = 'b'\n")
    assert pack_project(first)[0] != pack_project(second)[0]


def test_an_attempt_travels_as_json_and_another_protocol_is_named() -> None:
    attempt = RemoteAttempt(
        key="run/t/1",
        token="ab",
        hub=("127.0.0.1", 9000),
        snapshot="d1" * 32,
        argv=("bash", "{pit:project}/tasks/t.sh"),
        cwd=".",
        env={"PIT_RUN_ID": "run"},
        timeout=None,
        grace=5.0,
    )
    data = attempt.encode()

    assert RemoteAttempt.decode(data) == attempt
    older = data.replace(b'"protocol": 2', b'"protocol": 1')
    with pytest.raises(WireError, match="another version"):
        RemoteAttempt.decode(older)
    with pytest.raises(WireError, match="does not decode"):
        RemoteAttempt.decode(b'{"protocol": 2, "key": "k", "snapshot": "%s"}' % (b"a" * 64))
    with pytest.raises(WireError, match="not a sha256"):  # it names a file on the worker
        RemoteAttempt.decode(data.replace(b"d1d1", b"../", 1))
