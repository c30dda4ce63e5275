"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
`pit serve` (started as a subprocess on a free port of 127.0.0.1).

Each test does what a user does (load a page, press a button, read what changes) and waits for
what they would see, never for a fixed time: states change live on the page, without a reload.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import SECRETS, Serving, serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

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
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
WAIT = 20_000
"""Milliseconds a user-visible change may take to show (a run of shell tasks, polled)."""

API_TOKEN = "dashboard-token-1234"
READ_TOKEN = "dashboard-read-5678"

expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(WAIT)
    opened = context.new_page()
    yield opened
    context.close()


def gate(workspace: Workspace) -> Path:
    return workspace.root / "gate"


def gated_script(workspace: Workspace) -> str:
    """Prints a line every 0.1 s until the gate file exists."""
    return (
        "i=0\n"
        f'while [ ! -e "{gate(workspace)}" ]; do i=$((i+1)); echo "waiting $i"; sleep 0.1; done\n'
        "echo done waiting\n"
    )


def task_row(task: str) -> str:
    return f'tr[data-task="{task}"]'


def test_run_now_shows_the_run_live_and_its_log_lines_arrive(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    workspace.shell_project(
        "gated",
        {"wait": gated_script(workspace), "after": "echo after\n"},
        depends_on={"after": ["wait"]},
        dag_keys='schedule = "0 6 * * *"\ntimezone = "Europe/London"',
    )
    with serve(pit, workspace) as server:
        page.goto(server.client.base_url.join("/").__str__())
        row = page.locator('tr[data-dag="gated"]')
        expect(row).to_contain_text("at 06:00 every day")
        expect(row).to_contain_text("Europe/London")
        row.get_by_role("button", name="Run now").click()
        page.wait_for_url(re.compile(r"/runs/"))
        expect(page.locator(task_row("wait"))).to_contain_text("running")
        expect(page.locator(".logs pre")).to_contain_text("waiting 3")  # lines arrive live
        expect(page.locator('svg.graph g.node.running[aria-label^="wait"]')).to_have_count(1)
        gate(workspace).touch()
        expect(page.locator(".title .state")).to_have_text("success")
        expect(page.locator(task_row("after"))).to_contain_text("success")
        expect(page.locator(".logs pre")).to_contain_text("done waiting")
        page.get_by_role("button", name="after", exact=True).click()
        expect(page.locator(".logs pre")).to_have_text(re.compile(r"after\s*$"))
        download = page.get_by_role("link", name="Download the whole log")
        assert download.get_attribute("href", timeout=WAIT).endswith("/tasks/after/log")
        page.locator(".logs input[type=search]").fill("after")
        expect(page.locator(".logs pre mark")).to_have_text("after")


def test_run_now_asks_for_the_dags_params_and_the_run_gets_them(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    workspace.shell_project(
        "report",
        {"work": 'echo "limit $PIT_PARAM_LIMIT in $PIT_PARAM_REGION"\n'},
        extra="""
        [dag.webhook]
        token_secret = "hook_token"

        [dag.params]
        limit = { type = "int" }
        region = { type = "enum", choices = ["eu", "us"], default = "eu" }
        """,
    )
    with serve(pit, workspace) as server:
        page.goto(str(server.client.base_url.join("/dags/report")))
        page.get_by_role("button", name="Run now").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("limit (int)").fill("5")
        dialog.get_by_label("region (enum)").select_option("us")
        dialog.get_by_role("button", name="Start the run").click()
        page.wait_for_url(re.compile(r"/runs/"))
        expect(page.locator(".title .state")).to_have_text("success")
        run_id = page.url.rsplit("/", 1)[-1]
    record = workspace.manifest(workspace.root / "runs" / run_id)
    assert record["params"] == {"limit": 5, "region": "us"}


def test_cancel_from_the_run_page_ends_the_run_cancelled(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    webhook_dag(workspace, "slow", "sleep 300\n")
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/slow/runs").json()["run_id"]
        page.goto(str(server.client.base_url.join(f"/runs/{run_id}")))
        expect(page.locator(task_row("work"))).to_contain_text("running")
        page.get_by_role("button", name="Cancel run").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel the run").click()
        expect(page.locator(".title .state")).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Re-run from failure")).to_be_visible()


def test_rerun_from_failure_reuses_what_succeeded(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    fixed = workspace.root / "fixed"
    workspace.shell_project(
        "flaky",
        {"first": "echo first\n", "second": f'[ -e "{fixed}" ] || exit 4\necho second\n'},
        depends_on={"second": ["first"]},
        dag_keys='schedule = "0 6 * * *"',
    )
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/flaky/runs").json()["run_id"]
        page.goto(str(server.client.base_url.join(f"/runs/{run_id}")))
        expect(page.locator(".title .state")).to_have_text("failed")
        expect(page.locator(task_row("second"))).to_contain_text("exit code 4")
        fixed.touch()
        page.get_by_role("button", name="Re-run from failure").click()
        page.get_by_role("dialog").get_by_role("button", name="Re-run").click()
        page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in ("", run_id))
        expect(page.locator(".title .state")).to_have_text("success")
        expect(page.locator(task_row("first"))).to_contain_text(f"reused from {run_id}")
        expect(page.locator(".muted").first).to_contain_text(f"re-runs {run_id}")


def token_workspace(workspace: Workspace) -> str:
    workspace.config('api_token = "api"\napi_read_token = "api_read"\n')
    webhook_dag(workspace, "hooked", "echo hi\n")
    return SECRETS + f'api = "{API_TOKEN}"\napi_read = "{READ_TOKEN}"\n'


def test_login_logout_and_a_request_without_its_csrf_token_refused(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    with serve(pit, workspace, secrets_text=token_workspace(workspace)) as server:
        base = str(server.client.base_url)
        page.goto(base + "/dags/hooked")
        page.wait_for_url(re.compile(r"/login\?next=/dags/hooked"))
        page.get_by_label("API token").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("not the API's")
        page.get_by_label("API token").fill(API_TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(base + "/dags/hooked")
        expect(page.get_by_role("heading", name="hooked")).to_be_visible()
        cookie = next(c for c in page.context.cookies() if c["name"] == "pit_session")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it

        without = page.evaluate(
            "fetch('/api/dags/hooked/runs', {method: 'POST'}).then(r => r.status)"
        )
        assert without == 403
        token = page.locator('meta[name="pit-csrf"]').get_attribute("content")
        with_token = page.evaluate(
            "(token) => fetch('/api/dags/hooked/runs', {method: 'POST', "
            "headers: {'X-CSRF-Token': token}}).then(r => r.status)",
            token,
        )
        assert with_token == 202

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(re.compile(r"/login"))
        assert page.evaluate("fetch('/api/dags').then(r => r.status)") == 401


def test_a_request_from_another_site_is_refused(workspace: Workspace, pit: Pit) -> None:
    """A page elsewhere cannot steer a local pit serve: its browser sends an Origin."""
    webhook_dag(workspace, "hooked", "echo hi\n")
    with serve(pit, workspace) as server:
        evil = {"Origin": "http://evil.example"}
        assert server.client.post("/api/dags/hooked/runs", headers=evil).status_code == 403
        local = {"Origin": str(server.client.base_url).rstrip("/")}
        assert server.client.post("/api/dags/hooked/runs", headers=local).status_code == 202
        rebinding = {"Host": "evil.example"}  # a DNS-rebinding page: its own name, our address
        assert server.client.get("/api/dags", headers=rebinding).status_code == 403
        assert server.client.get("/", headers=rebinding).status_code == 403


def test_the_read_only_token_sees_but_cannot_steer(
    workspace: Workspace, pit: Pit, page: Page
) -> None:
    with serve(pit, workspace, secrets_text=token_workspace(workspace)) as server:
        page.goto(str(server.client.base_url.join("/login")))
        page.get_by_label("API token").fill(READ_TOKEN)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator('tr[data-dag="hooked"]')).to_be_visible()
        expect(page.get_by_role("button", name="Run now")).to_be_disabled()
        token = page.locator('meta[name="pit-csrf"]').get_attribute("content")
        refused = page.evaluate(
            "(token) => fetch('/api/dags/hooked/runs', {method: 'POST', "
            "headers: {'X-CSRF-Token': token}}).then(r => r.status)",
            token,
        )
        assert refused == 403


@pytest.mark.skipif(not AXE.is_file(), reason="axe-core is not vendored")
def test_each_page_has_no_serious_accessibility_violation(
    workspace: Workspace, pit: Pit, browser: Browser
) -> None:
    workspace.shell_project(
        "checked",
        {"first": "echo one\n", "second": "echo two; exit 1\n"},
        depends_on={"second": ["first"]},
        dag_keys='schedule = "*/5 * * * *"',
    )
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/checked/runs").json()["run_id"]
        wait_ended(server, run_id)
        for scheme in ("light", "dark"):
            # axe is injected as an inline script, which the pages' policy (rightly) refuses.
            context = browser.new_context(color_scheme=scheme, bypass_csp=True)
            context.set_default_timeout(WAIT)
            page = context.new_page()
            for path in ("/", "/dags/checked", f"/runs/{run_id}"):
                page.goto(str(server.client.base_url.join(path)))
                page.wait_for_selector("main table tbody tr")
                page.add_script_tag(content=AXE.read_text())
                found = page.evaluate("axe.run(document).then(r => r.violations)")
                serious = [v for v in found if v["impact"] in ("serious", "critical")]
                assert not serious, f"{path} ({scheme}): {json.dumps(serious, indent=1)[:3000]}"
            context.close()


def wait_ended(server: Serving, run_id: str) -> None:
    def ended() -> bool:
        answer = server.client.get(f"/api/runs/{run_id}")
        return answer.status_code == 200 and answer.json()["status"] not in ("pending", "running")

    wait_until(ended, timeout=30, what=f"run {run_id} to end")


def test_pages_and_assets_carry_a_strict_policy(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hooked", "echo hi\n")
    with serve(pit, workspace) as server:
        page = server.client.get("/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        script = re.search(r'src="(/static/pit\.js\?v=\w+)"', page.text)
        assert script is not None
        asset = server.client.get(script.group(1))
        assert asset.status_code == 200
        assert "immutable" in asset.headers["cache-control"]
        again = server.client.get(script.group(1), headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304
        assert server.client.get("/static/nothing.js").status_code == 404
