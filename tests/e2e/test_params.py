"""Typed params end to end: given on the command line (and to pit serve's webhook and API),
checked before a run starts, recorded on the run, and read by tasks from their environment."""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.e2e

PARAMS_DAG = f"""
[dag]
name = "report"
timezone = "Europe/Berlin"

[dag.params]
day = {{ type = "date", default = "{{{{ scheduled_date }}}}" }}
limit = {{ type = "int" }}
region = {{ type = "enum", choices = ["eu", "us"], default = "eu" }}
full = {{ type = "bool", default = false }}

[[tasks]]
name = "show"
script = "show.py"
runner = "$ {sys.executable}"
"""

SHOW = """
import json, os
from pit_sdk import get_param, get_params
typed = {name: [type(value).__name__, str(value)] for name, value in get_params().items()}
print(json.dumps({"typed": typed, "limit_plus_one": get_param("limit") + 1,
                  "env": {k: v for k, v in os.environ.items() if k.startswith("PIT_PARAM_")}}))
"""


def project(workspace) -> None:
    workspace.project("report", PARAMS_DAG, {"show.py": SHOW})


def shown(workspace) -> dict[str, object]:
    log = (workspace.only_run("report") / "logs" / "show.log").read_text()
    return json.loads(log.splitlines()[-1])


def test_params_reach_the_task_typed_and_are_recorded(workspace, pit) -> None:
    project(workspace)
    result = pit("run", "report", "--param", "limit=41", "--param", "full=yes")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = shown(workspace)
    assert seen["limit_plus_one"] == 42
    typed = seen["typed"]
    assert typed["limit"] == ["int", "41"]
    assert typed["full"] == ["bool", "True"]
    assert typed["region"] == ["str", "eu"]
    assert typed["day"][0] == "date"
    assert seen["env"]["PIT_PARAM_LIMIT"] == "41"
    assert seen["env"]["PIT_PARAM_FULL"] == "true"
    record = json.loads((workspace.only_run("report") / "run.json").read_text())
    assert record["params"] == {
        "day": typed["day"][1],
        "limit": 41,
        "region": "eu",
        "full": True,
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "param 'limit' is required (an int): give it"),
        (("--param", "limit=many"), "param 'limit': 'many' is not an int"),
        (("--param", "limit=1", "--param", "colour=red"), "unknown param 'colour'"),
        (("--param", "limit"), "--param wants name=value, not 'limit'"),
    ],
)
def test_a_param_that_does_not_fit_stops_the_run_before_it_starts(
    workspace, pit, args, error
) -> None:
    project(workspace)
    result = pit("run", "report", *args)
    assert result.returncode == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr
    assert workspace.run_dirs("report") == []


def test_the_webhook_and_the_api_take_params_and_refuse_bad_ones(workspace, pit) -> None:
    from tests.e2e.test_serve import TOKEN, finished, serve, wait_until

    workspace.project(
        "report",
        PARAMS_DAG.replace(
            'timezone = "Europe/Berlin"',
            'timezone = "Europe/Berlin"\n[dag.webhook]\ntoken_secret = "hook_token"\n',
        ),
        {"show.py": SHOW},
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve(pit, workspace) as server:
        hooked = server.client.post(
            "/webhook/report", headers=auth, json={"params": {"limit": 7, "region": "us"}}
        )
        assert hooked.status_code == 202, hooked.text
        run_id = hooked.json()["run_id"]
        wait_until(lambda: finished(workspace, run_id), what="the webhook's run")
        wrong = server.client.post(
            "/webhook/report", headers=auth, json={"params": {"limit": "seven"}}
        )
        not_object = server.client.post("/webhook/report", headers=auth, json={"params": [1]})
        api_missing = server.client.post("/api/dags/report/runs", json={"params": {}})
        api_unknown = server.client.post(
            "/api/dags/report/runs", json={"params": {"limit": 1, "colour": "red"}}
        )
        api_ok = server.client.post(
            "/api/dags/report/runs", json={"params": {"limit": "3", "day": "2026-11-02"}}
        )
        assert api_ok.status_code == 202, api_ok.text
        api_run = api_ok.json()["run_id"]
        wait_until(lambda: finished(workspace, api_run), what="the API's run")

    assert (wrong.status_code, not_object.status_code) == (400, 400)
    assert "param 'limit': 'seven' is not an int" in wrong.json()["error"]
    assert api_missing.status_code == 400
    assert "param 'limit' is required" in api_missing.json()["error"]
    assert api_unknown.status_code == 400
    assert "unknown param 'colour'" in api_unknown.json()["error"]
    hooked_record = workspace.manifest(workspace.root / "runs" / run_id)
    assert hooked_record["state"] == "success"
    assert (hooked_record["params"]["limit"], hooked_record["params"]["region"]) == (7, "us")
    api_record = workspace.manifest(workspace.root / "runs" / api_run)
    assert (api_record["params"]["limit"], api_record["params"]["day"]) == (3, "2026-11-02")
    assert len(workspace.run_dirs("report")) == 2  # the refused ones made no run
