"""Screenshots of the dashboard's three pages, light and dark, for a reviewer to look at.

Builds a demo workspace (the shipped example, given a schedule, and an `etl` DAG whose `load`
fails), starts `pit serve` on it, runs both DAGs through the API, and has Debian's Chromium
(driven by Playwright) take the overview, the `etl` DAG page and its failed run's page in the
light and the dark scheme: `docs/screenshots/<page>-<scheme>.png`.

usage: uv run python bench/screenshots.py [--out docs/screenshots] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

ETL = """\
[dag]
name = "etl"
schedule = "*/15 9-17 * * 1-5"
timezone = "Europe/London"
max_active_tasks = 2

[[tasks]]
name = "extract_orders"
script = "tasks/extract.sh"

[[tasks]]
name = "extract_customers"
script = "tasks/extract.sh"

[[tasks]]
name = "transform"
script = "tasks/transform.sh"
depends_on = ["extract_orders", "extract_customers"]

[[tasks]]
name = "load"
script = "tasks/load.sh"
depends_on = ["transform"]
retries = 1
retry_delay = "1s"

[[tasks]]
name = "report"
script = "tasks/extract.sh"
depends_on = ["load"]
"""
SCRIPTS = {
    "extract.sh": 'for i in $(seq 1 40); do echo "row $i of 40 read"; done; sleep 1\n',
    "transform.sh": 'echo "joining orders and customers"; sleep 1; echo "1,500 rows out"\n',
    "load.sh": 'echo "connecting to the warehouse"; echo "ERROR: relation missing" >&2; exit 3\n',
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_workspace(root: Path) -> Path:
    workspace = root / "workspace"
    shutil.copytree(ROOT / "examples", workspace)
    quickstart = workspace / "projects" / "quickstart" / "pit.toml"
    text = quickstart.read_text().replace(
        'name = "quickstart"\n', 'name = "quickstart"\nschedule = "0 6 * * *"\n', 1
    )
    quickstart.write_text(text)
    etl = workspace / "projects" / "etl"
    (etl / "tasks").mkdir(parents=True)
    (etl / "pit.toml").write_text(ETL)
    for name, body in SCRIPTS.items():
        (etl / "tasks" / name).write_text(f"#!/bin/sh\n{body}")
    return workspace


def call(base: str, path: str, method: str = "GET") -> dict[str, object]:
    request = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def wait_for(check, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.2)
    sys.exit(f"screenshots: timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the demo workspace")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pit-screenshots-"))
    workspace = demo_workspace(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("pit")),
            "-C",
            str(workspace),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: call(base, "/api/health"), "pit serve to listen")
        call(base, "/api/dags/quickstart/runs", "POST")
        run_id = str(call(base, "/api/dags/etl/runs", "POST")["run_id"])

        def ended() -> bool:
            runs = call(base, "/api/runs")["runs"]
            return len(runs) == 2 and all(
                run["status"] not in ("pending", "running") for run in runs
            )  # type: ignore[attr-defined,index]

        wait_for(ended, "the demo runs to end", timeout=180)
        args.out.mkdir(parents=True, exist_ok=True)
        pages = {"overview": "/", "dag": "/dags/etl", "run": f"/runs/{run_id}"}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    color_scheme=scheme, viewport={"width": 1400, "height": 1000}
                )
                page = context.new_page()
                for name, path in pages.items():
                    page.goto(base + path)
                    page.wait_for_selector("main table tbody tr")
                    if name == "run":
                        page.wait_for_function(
                            "document.querySelector('.logs pre').textContent.length > 0"
                        )
                    shot = args.out / f"{name}-{scheme}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshots: {shot}")
                context.close()
            browser.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"screenshots: demo workspace kept in {workspace}")


if __name__ == "__main__":
    main()
