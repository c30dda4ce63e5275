"""The web dashboard in a browser: overview load, page weight, a big run's page, a chatty run.

Debian's Chromium (`/usr/bin/chromium`, headless), driven by Playwright as bench/screenshots.py
drives it; every timed load is a fresh browser context (no cache, a new session cookie). Times
are the page's own (`performance.now()`, from navigation start); an init script records, with a
MutationObserver, the first moment the page shows what it should, and every long task
(PerformanceObserver `longtask`, buffered).

overview: `pit serve` on 100 DAGs with 100,000 runs in its run store (api.py's reads workspace;
          10,000 runs with --quick). `/` loaded 5 times (3 with --quick) after one untimed load:
          first-contentful-paint, and the time until the table has its 100 rows.
weight:   the bytes of the overview's document, pit.js and pit.css as the browser received them
          (Resource Timing: transferSize, headers included; the bodies' encodedBodySize shown
          too), in the first timed load. The API JSON the page then fetches is shown apart.
run page: a DAG of 1,000 independent `true` tasks (200 with --quick; max_active_tasks = 8), run
          to its end through the API; `/runs/<id>` loaded 3 times (2 with --quick) after one
          untimed load: the time until the task table has 1,000 rows and the graph 1,000
          `svg.graph g.node`.
logs:     a run whose one task writes 10,000 lines/s for 5 s (2 s with --quick; api.py's writer,
          waiting for a gate file): its page is opened while the task waits, then the gate
          opens. Long tasks while the lines stream (from the gate to the last line drawn), the
          round trip of a `page.evaluate` every 100 ms meanwhile, and whether the log viewer
          shows the lines, up to the last.

Targets: first paint < 500 ms (median); HTML+JS+CSS < 300 KB; the run page of 1,000 tasks drawn
< 1 s (median); no long task > 200 ms while the run streams, and the viewer receives the lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    PYTHON,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    table,
    validate_workspace,
    write_dag_of,
)
from api import DAGS, LINES_PER_SECOND, RUNS_PER_DAG, WRITER, build_reads_workspace
from screenshots import CHROMIUM, CHROMIUM_ARGS
from serve import Server, new_workspace, start_pit, warm_up, write_dag

FCP_TARGET_MS = 500.0
WEIGHT_TARGET_KB = 300.0
RUN_PAGE_TARGET_MS = 1000.0
LONG_TASK_TARGET_MS = 200.0
WIDE = "wide"
WIDE_TASKS = 1000
TRUE_SCRIPT = "#!/usr/bin/env bash\ntrue\n"
CHATTY = "chatty"
RUN_GUARD = 600.0
"""Seconds a run gets to end (a hang, not a slow run)."""
PAGE_GUARD_MS = 60_000
"""Milliseconds a page gets to show what it should."""

INIT_SCRIPT = """\
(() => {
  const want = %(want)s;
  const bench = (window.__bench = { marks: {}, longtasks: [], longtaskError: null });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        bench.longtasks.push({ start: e.startTime, duration: e.duration });
      }
    }).observe({ type: "longtask", buffered: true });
  } catch (error) {
    bench.longtaskError = String(error);
  }
  const kind = location.pathname.split("/")[1] || "overview";
  const check = () => {
    if (kind === "overview") {
      return document.querySelectorAll("main tbody tr").length === want.rows;
    }
    if (kind === "runs") {
      return (
        document.querySelectorAll("main tbody tr[data-task]").length === want.tasks &&
        document.querySelectorAll("svg.graph g.node").length === want.tasks
      );
    }
    return true;
  };
  const observer = new MutationObserver(() => {
    if (!bench.marks.ready && check()) {
      bench.marks.ready = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true });
})();
"""

RESULTS_JS = """\
() => {
  const paint = performance.getEntriesByType("paint");
  const fcp = paint.find((e) => e.name === "first-contentful-paint");
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource").map((e) => ({
    name: e.name, type: e.initiatorType, transfer: e.transferSize, body: e.encodedBodySize,
    decoded: e.decodedBodySize, end: e.responseEnd,
  }));
  return {
    fcp: fcp ? fcp.startTime : null,
    ready: window.__bench.marks.ready ?? null,
    longtasks: window.__bench.longtasks,
    longtaskError: window.__bench.longtaskError,
    nav: nav ? { transfer: nav.transferSize, body: nav.encodedBodySize,
                 decoded: nav.decodedBodySize, load: nav.loadEventEnd } : null,
    resources,
    now: performance.now(),
  };
}
"""

VIEWER_JS = """\
() => {
  const pre = document.querySelector(".logs pre");
  const blocks = pre ? [...pre.children] : [];  // one block per batch of lines drawn
  const lines = blocks.flatMap((b) => b.textContent.split("\\n")).filter((l) => l.startsWith("L "));
  const last = lines.length ? lines[lines.length - 1].slice(2, 9) : null;
  const first = lines.length ? lines[0].slice(2, 9) : null;
  const note = document.querySelector(".logs .earlier");
  const chars = pre ? pre.textContent.length : 0;
  return { lines: lines.length, first, last, chars, note: Boolean(note && !note.hidden) };
}
"""


# --- the browser -----------------------------------------------------------------------------


class Browser:
    """Headless Chromium; each `load` a fresh context."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._manager = sync_playwright()
        self._playwright = self._manager.start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )

    def context(self, want: Mapping[str, int]) -> Any:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(script=INIT_SCRIPT % {"want": json.dumps(dict(want))})
        return context

    def load(self, url: str, want: Mapping[str, int]) -> dict[str, Any]:
        """Open `url` in a fresh context, wait until it shows `want`; the page's figures."""
        context = self.context(want)
        try:
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "() => window.__bench.marks.ready !== undefined", timeout=PAGE_GUARD_MS
            )
            page.wait_for_timeout(300)  # the long tasks that follow the drawing, if any
            result: dict[str, Any] = page.evaluate(RESULTS_JS)
        finally:
            context.close()
        return result

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._manager.__exit__(None, None, None)


# --- pit serve -------------------------------------------------------------------------------


class Pit:
    def __init__(self, workspace: Path, env: Mapping[str, str], log: Path) -> None:
        self.workspace = workspace
        self.server: Server = start_pit(workspace, env, log)
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.client = httpx.Client(base_url=self.base, timeout=30.0)

    def start(self) -> None:
        self.server.wait_listening()
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"pit serve's API did not answer:\n{self.server.output()}")
            time.sleep(0.1)

    def start_run(self, dag: str) -> str:
        response = self.client.post(f"/api/dags/{dag}/runs")
        if response.status_code != 202:
            raise SystemExit(f"POST /api/dags/{dag}/runs: {response.status_code} {response.text}")
        return str(response.json()["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/runs/{run_id}")
        if response.status_code != 200:
            raise SystemExit(f"GET /api/runs/{run_id}: {response.status_code} {response.text}")
        found: dict[str, Any] = response.json()
        return found

    def wait_status(
        self, run_id: str, done: tuple[str, ...], guard: float = RUN_GUARD
    ) -> dict[str, Any]:
        deadline = time.monotonic() + guard
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in done:
                return run
            time.sleep(0.1)
        raise SystemExit(f"run {run_id} not {done} within {guard:.0f}s")

    def wait_ended(self, run_id: str) -> dict[str, Any]:
        return self.wait_status(
            run_id, ("success", "failed", "cancelled", "skipped", "upstream_failed")
        )

    def stop(self) -> None:
        self.client.close()
        code = self.server.stop()  # SIGTERM, then waits
        if code != 0:
            raise SystemExit(f"pit serve exited {code}:\n{self.server.output()}")


# --- the measures ----------------------------------------------------------------------------


def longest(tasks: list[dict[str, float]], since: float = 0.0, until: float = 1e18) -> float:
    """The longest long task (ms) that overlaps [since, until]; 0 when none."""
    found = [
        t["duration"] for t in tasks if t["start"] + t["duration"] >= since and t["start"] <= until
    ]
    return max(found, default=0.0)


def overview_part(
    tmp: Path, env: Mapping[str, str], args: argparse.Namespace, browser: Browser, report: Report
) -> None:
    runs_per_dag = 100 if args.quick else RUNS_PER_DAG
    repeat = args.repeat or (3 if args.quick else 5)
    workspace, runs = build_reads_workspace(tmp, runs_per_dag, 1800)
    validate_workspace(workspace, env)
    pit = Pit(workspace, env, tmp / "overview-pit.log")
    want = {"rows": DAGS}
    try:
        pit.start()
        print("dashboard: overview, 1 untimed load ...", file=sys.stderr, flush=True)
        browser.load(pit.base + "/", want)
        loads = []
        for index in range(repeat):
            result = browser.load(pit.base + "/", want)
            loads.append(result)
            print(
                f"  overview {index + 1}/{repeat}: FCP {result['fcp']:.0f} ms, "
                f"{DAGS} rows at {result['ready']:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
        # the sizes outside the browser too: the bodies as pit serve sends them
        raw = {
            "document": len(pit.client.get("/").content),
            "pit.js": len(pit.client.get("/static/pit.js").content),
            "pit.css": len(pit.client.get("/static/pit.css").content),
        }
    finally:
        pit.stop()

    fcps = [r["fcp"] for r in loads]
    readies = [r["ready"] for r in loads]
    first = loads[0]
    weights = {"document": (first["nav"]["transfer"], first["nav"]["body"])}
    api_bytes = 0
    for resource in first["resources"]:
        path = resource["name"].split(pit.base, 1)[-1]
        for asset in ("pit.js", "pit.css"):
            if path.startswith(f"/static/{asset}"):
                weights[asset] = (resource["transfer"], resource["body"])
        if path.startswith("/api/"):
            api_bytes += resource["transfer"]
    missing = {"pit.js", "pit.css"} - set(weights)
    if missing:
        raise SystemExit(f"the overview's resources lack {missing}: {first['resources']}")
    transferred = sum(t for t, _ in weights.values())
    bodies = sum(b for _, b in weights.values())

    print()
    rows = [
        [
            f"overview, {DAGS} DAGs, {runs:,} runs",
            f"{median(fcps):.0f}ms",
            f"{min(fcps):.0f}..{max(fcps):.0f}ms",
            f"{median(readies):.0f}ms",
            f"{min(readies):.0f}..{max(readies):.0f}ms",
            f"{median(longest(r['longtasks']) for r in loads):.0f}ms",
        ]
    ]
    print(
        table(
            [f"{repeat} cold loads", "FCP", "min..max", f"{DAGS} rows", "min..max", "longest task"],
            rows,
        )
    )
    print()
    size_rows = [[name, f"{t:,}", f"{b:,}", f"{raw[name]:,}"] for name, (t, b) in weights.items()]
    size_rows.append(["total", f"{transferred:,}", f"{bodies:,}", f"{sum(raw.values()):,}"])
    print(table(["overview bytes", "transferred", "body", "body (httpx)"], size_rows))

    report.info.append(
        f"overview: the API JSON it fetched on its first draw: {api_bytes / 1024:.1f} KB "
        f"(/api/dags?recent=20, /api/runs?state=running); load event median "
        f"{median(r['nav']['load'] for r in loads):.0f} ms"
    )
    if first["longtaskError"]:
        report.info.append(f"longtask observer failed: {first['longtaskError']}")
    report.check(
        f"overview first-contentful-paint, {DAGS} DAGs, {runs:,} runs",
        median(fcps),
        FCP_TARGET_MS,
        unit="ms",
        detail=f"median of {repeat}; table of {DAGS} rows at {median(readies):.0f} ms "
        f"(min..max {min(readies):.0f}..{max(readies):.0f})",
    )
    report.check(
        "overview HTML+JS+CSS",
        transferred / 1024,
        WEIGHT_TARGET_KB,
        unit="KB",
        detail=f"transferred incl. headers; bodies {bodies / 1024:.1f} KB",
    )


def build_runs_workspace(tmp: Path, tasks: int) -> tuple[Path, Path]:
    """The wide DAG and the chatty one (api.py's writer); returns the workspace and the gate
    folder of the writer."""
    workspace = new_workspace(tmp / "runs-ws")
    write_dag_of(workspace, WIDE, tasks, TRUE_SCRIPT, chain=False, max_active_tasks=8)
    write_dag(workspace, CHATTY, webhook=True)  # pit serve needs a trigger to serve
    folder = tmp / "chatty"
    (folder / "results").mkdir(parents=True)
    writer = folder / "writer.py"
    writer.write_text(WRITER)
    script = workspace / "projects" / CHATTY / "tasks" / "noop.sh"
    script.write_text(f"exec {PYTHON} {writer} {folder / 'params.json'}\n")
    return workspace, folder


def run_page_part(
    pit: Pit, args: argparse.Namespace, browser: Browser, tasks: int, report: Report
) -> None:
    repeat = args.repeat or (2 if args.quick else 3)
    print(f"dashboard: a run of {tasks} tasks ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    run_id = pit.start_run(WIDE)
    run = pit.wait_ended(run_id)
    took = time.monotonic() - started
    if run["status"] != "success" or len(run["tasks"]) != tasks:
        raise SystemExit(f"the {WIDE} run ended {run['status']} with {len(run['tasks'])} tasks")
    want = {"tasks": tasks}
    url = f"{pit.base}/runs/{run_id}"
    browser.load(url, want)
    loads = []
    for index in range(repeat):
        result = browser.load(url, want)
        loads.append(result)
        print(
            f"  run page {index + 1}/{repeat}: {tasks} rows and nodes at {result['ready']:.0f} ms, "
            f"FCP {result['fcp']:.0f} ms, longest task {longest(result['longtasks']):.0f} ms",
            file=sys.stderr,
            flush=True,
        )
    readies = [r["ready"] for r in loads]
    api_bytes = sum(r["transfer"] for r in loads[0]["resources"] if "/api/" in r["name"])
    print()
    print(
        table(
            [
                f"run page, {tasks} tasks",
                "drawn",
                "min..max",
                "FCP",
                "longest task",
                "long tasks sum",
            ],
            [
                [
                    f"{repeat} cold loads",
                    f"{median(readies):.0f}ms",
                    f"{min(readies):.0f}..{max(readies):.0f}ms",
                    f"{median(r['fcp'] for r in loads):.0f}ms",
                    f"{median(longest(r['longtasks']) for r in loads):.0f}ms",
                    f"{median(sum(t['duration'] for t in r['longtasks']) for r in loads):.0f}ms",
                ]
            ],
        )
    )
    report.info.append(
        f"run page: the {tasks}-task run took {took:.1f}s through the API; its page fetched "
        f"{api_bytes / 1024:.1f} KB of API JSON (run + graph; the WebSocket not counted)"
    )
    report.check(
        f"run page of {tasks} tasks drawn (table + graph)",
        median(readies),
        RUN_PAGE_TARGET_MS,
        unit="ms",
        detail=f"median of {repeat}; min..max {min(readies):.0f}..{max(readies):.0f}",
    )


def logs_part(
    pit: Pit, folder: Path, args: argparse.Namespace, browser: Browser, report: Report
) -> None:
    seconds = 2.0 if args.quick else 5.0
    lines = int(LINES_PER_SECOND * seconds)
    gate = folder / "gate"
    (folder / "params.json").write_text(
        json.dumps(
            {
                "gate": str(gate),
                "rate": LINES_PER_SECOND,
                "seconds": seconds,
                "results": str(folder / "results"),
            }
        )
    )
    print(
        f"dashboard: a run writing {lines:,} lines over {seconds:g}s ...",
        file=sys.stderr,
        flush=True,
    )
    run_id = pit.start_run(CHATTY)
    pit.wait_status(run_id, ("running",), guard=60)
    context = browser.context({"tasks": 1})
    try:
        page = context.new_page()
        page.goto(f"{pit.base}/runs/{run_id}", wait_until="load")
        page.wait_for_function(
            "() => window.__bench.marks.ready !== undefined", timeout=PAGE_GUARD_MS
        )
        page.wait_for_timeout(500)  # the WebSocket open, the page settled
        gate_at = page.evaluate("() => performance.now()")
        gate.touch()
        round_trips = []
        viewer_seen = None
        ended: dict[str, Any] | None = None
        ended_seen = 0.0
        deadline = time.monotonic() + seconds + RUN_GUARD
        while time.monotonic() < deadline:
            before = time.perf_counter()
            viewer = page.evaluate(VIEWER_JS)
            round_trips.append((time.perf_counter() - before) * 1000)
            if viewer["lines"] and viewer_seen is None:
                viewer_seen = page.evaluate("() => performance.now()") - gate_at
            if ended is None:
                now = pit.run(run_id)
                if now["status"] not in ("pending", "running"):
                    ended, ended_seen = now, time.monotonic()
            if ended is not None and viewer["last"] == f"{lines - 1:07d}":
                break
            if ended is not None and time.monotonic() > ended_seen + 30:
                break  # the viewer never showed the last line
            time.sleep(0.1)
        done_at = page.evaluate("() => performance.now()")
        page.wait_for_timeout(300)
        result = page.evaluate(RESULTS_JS)
        viewer = page.evaluate(VIEWER_JS)
    finally:
        context.close()
        gate.touch()
    if ended is None:
        ended = pit.wait_ended(run_id)
    if ended["status"] != "success":
        raise SystemExit(f"the {CHATTY} run ended {ended['status']}: {ended}")
    writing = json.loads((folder / "results" / f"{run_id}.json").read_text())["writing"]
    streaming = longest(result["longtasks"], gate_at, done_at)
    during = [
        t
        for t in result["longtasks"]
        if t["start"] + t["duration"] >= gate_at and t["start"] <= done_at
    ]
    got_last = viewer["last"] == f"{lines - 1:07d}"
    print()
    print(
        table(
            [f"{lines:,} lines in {writing:.1f}s", "value"],
            [
                ["longest task while streaming", f"{streaming:.0f}ms"],
                [
                    "long tasks while streaming",
                    f"{len(during)} ({sum(t['duration'] for t in during):.0f}ms)",
                ],
                ["longest task at page load", f"{longest(result['longtasks'], 0, gate_at):.0f}ms"],
                ["evaluate round trip max", f"{max(round_trips):.0f}ms"],
                ["evaluate round trip median", f"{median(round_trips):.0f}ms"],
                [
                    "first line shown after gate",
                    fmt_seconds(viewer_seen / 1000) if viewer_seen is not None else "never",
                ],
                ["gate -> last line shown", fmt_seconds((done_at - gate_at) / 1000)],
                [
                    "viewer lines (kept)",
                    f"{viewer['lines']:,} ({viewer['first']}..{viewer['last']})",
                ],
            ],
        )
    )
    report.info.append(
        f"logs: the viewer holds {viewer['lines']:,} lines ({viewer['first']}..{viewer['last']}), "
        f"{'with' if viewer['note'] else 'without'} the earlier-lines note; evaluate round trips "
        f"max {max(round_trips):.0f} ms, median {median(round_trips):.0f} ms over "
        f"{len(round_trips)} probes"
    )
    report.check(
        f"longest task while a run writes {LINES_PER_SECOND:,} lines/s",
        streaming,
        LONG_TASK_TARGET_MS,
        unit="ms",
        detail=f"{len(during)} long tasks, {sum(t['duration'] for t in during):.0f} ms in all, "
        f"gate -> last line drawn {(done_at - gate_at) / 1000:.1f}s",
    )
    report.check(
        "log viewer lacks the last line (1 = lacks it)",
        0 if got_last else 1,
        0,
        unit="",
        detail=f"last line shown {viewer['last']}, expected {lines - 1:07d}",
    )


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="overview,run,logs", help="comma-separated parts (overview,run,logs)"
    )
    args = parser.parse_args()
    tmp = make_tmp("dashboard", args)
    try:
        return _run(tmp, args)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    parts = set(args.only.split(","))
    report = Report("dashboard", args.quick)
    warm_up(tmp, env)
    browser = Browser()
    try:
        if "overview" in parts:
            overview_part(tmp, env, args, browser, report)
        if parts & {"run", "logs"}:
            tasks = 200 if args.quick else WIDE_TASKS
            workspace, folder = build_runs_workspace(tmp, tasks)
            validate_workspace(workspace, env)
            pit = Pit(workspace, env, tmp / "runs-pit.log")
            try:
                pit.start()
                if "run" in parts:
                    run_page_part(pit, args, browser, tasks, report)
                if "logs" in parts:
                    logs_part(pit, folder, args, browser, report)
            finally:
                pit.stop()
    finally:
        browser.close()
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
