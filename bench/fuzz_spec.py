"""Fuzz the config surfaces (`pit.toml`, `pit_config.toml`) outside pytest, at volume.

    uv run python bench/fuzz_spec.py                    # 100,000 inputs per surface
    uv run python bench/fuzz_spec.py --count 20000 --seed 7 --out /tmp/fuzz-crashes

Each input is a generated document or a mutated seed (`tests/fuzz/corpus.py`, which the
hypothesis suite `tests/fuzz/test_spec_fuzz.py` shares). The property: parsing and validating
returns problems and never raises, and a file that validates clean is ready to run (paths stay
inside the run folder, durations are finite, the time zone loads, the schedule fires).

Per surface it prints the inputs run, how many validated clean (and so were checked as ready to
run), the crashes (an exception, or the property broken) and the
hangs (one input over `--hang` seconds, 2 by default). The first few reproducers of each are
written to `--out` as `<surface>-<n>.toml`, with the traceback beside them. Exit code 1 on any
crash or hang, 0 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fuzz.corpus

from _harness import table

from tests.fuzz.corpus import CHECKS, fuzz_input, seeds

KEEP = 5
"""Reproducers written per surface and kind (crash, hang)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per surface")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same inputs)")
    parser.add_argument("--hang", type=float, default=2.0, help="seconds one input may take")
    parser.add_argument("--out", type=Path, default=None, help="where reproducers go")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pit-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for surface, check in CHECKS.items():
        rng = random.Random(f"{args.seed}:{surface}")
        corpus = seeds(surface)
        crashes = hangs = clean = 0
        slowest = 0.0
        started = time.perf_counter()
        for index in range(args.count):
            data = fuzz_input(surface, rng, corpus)
            began = time.perf_counter()
            try:
                clean += check(data)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                crashes += 1
                if crashes <= KEEP:
                    _keep(out, f"{surface}-crash-{crashes}", data, traceback.format_exc())
            took = time.perf_counter() - began
            slowest = max(slowest, took)
            if took > args.hang:
                hangs += 1
                if hangs <= KEEP:
                    _keep(out, f"{surface}-hang-{hangs}", data, f"took {took:.2f}s\n")
            if (index + 1) % 10_000 == 0:
                print(f"  {surface}: {index + 1}/{args.count}", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - started
        rows.append(
            (
                surface,
                args.count,
                clean,
                crashes,
                hangs,
                f"{slowest * 1000:.0f}ms",
                f"{elapsed:.1f}s",
            )
        )
        failed = failed or bool(crashes or hangs)
    headers = ("surface", "inputs", "valid", "crashes", "hangs", "slowest", "total")
    print(table(headers, rows))
    print(f"reproducers (if any): {out}")
    print("FAIL" if failed else "PASS", "fuzz_spec: no crash, no hang" if not failed else "")
    return 1 if failed else 0


def _keep(out: Path, name: str, data: bytes, why: str) -> None:
    (out / f"{name}.toml").write_bytes(data)
    (out / f"{name}.txt").write_text(why, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
