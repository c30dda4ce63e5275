"""Fuzz the SDK broker over its real Unix socket outside pytest, at volume.

    uv run python bench/fuzz_sdk.py                    # 100,000 connections
    uv run python bench/fuzz_sdk.py --count 20000 --seed 7 --out /tmp/fuzz-sdk

Each connection is a case of `tests/fuzz/test_sdk_fuzz.py` (which the hypothesis suite runs a
few hundred of): arbitrary bytes, arbitrary JSON, hostile requests (deep nesting, huge integers,
over 1 MiB), request-shaped objects with wrong, missing and extra params, sent in pieces, with or
without a half-close; `--clients` of them at a time against one real `Broker` (in a thread,
with its own trio loop). After each one the broker must still answer `get_secret`.

It prints the inputs run and the crashes by kind: `died` (an exception left the broker, which
is then restarted), `no answer` (the connection was refused or reset), `bad answer` (not one
JSON response), `internal error` (a pit bug the broker caught and answered), `exception` (the
harness itself failed); and the hangs (no answer nor close within the hang bound). The first
few reproducers of each kind are written to `--out`. Exit code 1 on any crash or hang, 0
otherwise.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import random
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fuzz

from _harness import table

from tests.fuzz.test_sdk_fuzz import Broken, BrokerThread, Case, check, fuzz_case

KEEP = 5
"""Reproducers written per kind of failure."""


class Target:
    """The broker under fuzz; restarted when a case kills it, so the count goes on."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._generation = 0
        self.current = BrokerThread(self._new_folder())

    def restart(self, dead: BrokerThread) -> None:
        with self._lock:
            if self.current is dead:
                dead.stop()
                self.current = BrokerThread(self._new_folder())

    def _new_folder(self) -> Path:
        self._generation += 1
        folder = self._folder / str(self._generation)
        folder.mkdir()
        return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="connections to make")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same cases)")
    parser.add_argument("--clients", type=int, default=16, help="connections at a time")
    parser.add_argument("--out", type=Path, default=None, help="where reproducers go")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pit-fuzz-sdk-"))
    out.mkdir(parents=True, exist_ok=True)
    failures: collections.Counter[str] = collections.Counter()
    done = 0
    lock = threading.Lock()

    with tempfile.TemporaryDirectory(prefix="pit-fuzz-") as folder:
        target = Target(Path(folder))

        def run_one(index: int) -> None:
            nonlocal done
            case = fuzz_case(random.Random(f"{args.seed}:{index}"))
            broker = target.current
            kind = None
            try:
                check(broker, case)
            except Broken as exc:
                kind, why = exc.kind, str(exc)
            except Exception:
                kind, why = "exception", traceback.format_exc()
            with lock:
                done += 1
                if done % 10_000 == 0:
                    print(f"  {done}/{args.count}", file=sys.stderr, flush=True)
                if kind is None:
                    return
                failures[kind] += 1
                if failures[kind] <= KEEP:
                    _keep(out, f"{kind.replace(' ', '-')}-{failures[kind]}", case, why)
            if broker.wait_ended(2.0 if kind == "died" else 0):
                target.restart(broker)

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            for _ in pool.map(run_one, range(args.count)):
                pass
        elapsed = time.perf_counter() - started
        target.current.stop()

    crashes = sum(n for kind, n in failures.items() if kind != "hang")
    kinds = ("died", "no answer", "bad answer", "internal error", "exception", "hang")
    print(
        table(
            ("inputs", "crashes", *kinds, "total"),
            [(args.count, crashes, *(failures[k] for k in kinds), f"{elapsed:.1f}s")],
        )
    )
    print(f"reproducers (if any): {out}")
    failed = bool(crashes or failures["hang"])
    print("FAIL" if failed else "PASS", "fuzz_sdk: no crash, no hang" if not failed else "")
    return 1 if failed else 0


def _keep(out: Path, name: str, case: Case, why: str) -> None:
    (out / f"{name}.bin").write_bytes(b"".join(case.chunks))
    cut = f"chunks {[len(c) for c in case.chunks]}, half-close {case.half_close}\n"
    (out / f"{name}.txt").write_text(cut + why, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
