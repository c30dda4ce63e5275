"""`parse_dag`: one key at a time, every problem in one pass, each with its key path and fix."""

from __future__ import annotations

import textwrap

import pytest

from pit.spec.dag import Runner, RunnerKind, parse_dag
from pit.spec.defaults import DEFAULT_MAX_ACTIVE_TASKS

from .tomltext import FILE, dag, parse, parse_ok, pit_toml, table, task, the_problem

README_EXAMPLE = textwrap.dedent(
    """\
    [dag]
    name = "claims_pipeline"
    schedule = "0 6 * * *"
    overlap = "skip"
    timeout = "45m"

    [[tasks]]
    name = "extract"
    script = "tasks/extract.py"
    timeout = "15m"
    retries = 2
    retry_delay = "30s"

    [[tasks]]
    name = "validate"
    script = "tasks/validate.py"
    depends_on = ["extract"]

    [[tasks]]
    name = "load"
    script = "tasks/load.py"
    depends_on = ["validate"]

    [[outputs]]
    name = "claims_staging"
    type = "table"
    location = "warehouse.staging.claims"
    """
)


# --- a valid file --------------------------------------------------------------------------------


def test_readme_example_parses_into_the_spec() -> None:
    spec = parse_ok(README_EXAMPLE)

    assert spec.name == "claims_pipeline"
    assert spec.schedule == "0 6 * * *"
    assert spec.overlap == "skip"
    assert spec.timeout == 45 * 60
    assert [t.name for t in spec.tasks] == ["extract", "validate", "load"]
    extract = spec.task("extract")
    assert extract.runner == Runner(kind=RunnerKind.PYTHON)
    assert (extract.timeout, extract.retries, extract.retry_delay) == (15 * 60, 2, 30.0)
    assert spec.task("load").depends_on == ("validate",)
    assert spec.outputs[0].location == "warehouse.staging.claims"


def test_defaults_when_optional_keys_are_left_out() -> None:
    spec = parse_ok(pit_toml(dag(), task("only")))

    assert spec.overlap == "skip"
    assert spec.timeout is None
    assert spec.keep_artifacts is None
    assert spec.max_active_tasks == DEFAULT_MAX_ACTIVE_TASKS
    assert not spec.git_backed
    assert (spec.sql, spec.dbt, spec.ftp_watch, spec.webhook) == (None, None, None, None)
    only = spec.tasks[0]
    assert (only.depends_on, only.timeout, only.retries, only.retry_delay) == ((), None, 0, 0.0)
    assert only.retry_backoff == 1.0


def test_task_lookup_by_unknown_name_is_a_key_error() -> None:
    spec = parse_ok(pit_toml(dag(), task("only")))

    with pytest.raises(KeyError):
        spec.task("other")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("15m", 900.0), ("2h", 7200.0), ("1h30m", 5400.0), ("500ms", 0.5)],
)
def test_task_durations(text: str, seconds: float) -> None:
    spec = parse_ok(pit_toml(dag(), task("a", timeout=text, retry_delay=text)))

    assert spec.tasks[0].timeout == seconds
    assert spec.tasks[0].retry_delay == seconds


def test_retry_backoff_grows_the_wait_between_retries() -> None:
    spec = parse_ok(pit_toml(dag(), task("a", retries=3, retry_delay="10s", retry_backoff=2.0)))
    retried = spec.tasks[0]

    assert retried.retry_backoff == 2.0
    assert [retried.retry_wait(n) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]


def test_retry_backoff_accepts_an_integer() -> None:
    spec = parse_ok(pit_toml(dag(), task("a", retry_backoff=3)))

    assert spec.tasks[0].retry_backoff == 3.0


def test_max_active_tasks() -> None:
    spec = parse_ok(pit_toml(dag(max_active_tasks=2), task("a")))

    assert spec.max_active_tasks == 2


def test_keep_artifacts_per_project() -> None:
    spec = parse_ok(pit_toml(dag(keep_artifacts=["logs", "data"]), task("a")))

    assert spec.keep_artifacts == ("logs", "data")


def test_git_backed_dag() -> None:
    spec = parse_ok(
        pit_toml(dag(git_url="git@example.com:c/claims.git", git_ref="main"), task("a"))
    )

    assert spec.git_backed
    assert (spec.git_url, spec.git_ref) == ("git@example.com:c/claims.git", "main")


def test_sql_connection() -> None:
    spec = parse_ok(pit_toml(dag(), table("dag.sql", connection="warehouse_db"), task("a.sql")))

    assert spec.sql is not None
    assert spec.sql.connection == "warehouse_db"


def test_dbt_table() -> None:
    dbt = table(
        "dag.dbt",
        version="1.9.1",
        adapter="dbt-sqlserver",
        connection="warehouse_db",
        project_dir="dbt_repo",
        extra_deps=["dbt-utils"],
    )
    spec = parse_ok(pit_toml(dag(), dbt, task("models", script="run", runner="dbt")))

    assert spec.dbt is not None
    assert (spec.dbt.version, spec.dbt.adapter, spec.dbt.connection) == (
        "1.9.1",
        "dbt-sqlserver",
        "warehouse_db",
    )
    assert spec.dbt.project_dir == "dbt_repo"
    assert spec.dbt.extra_deps == ("dbt-utils",)
    assert (spec.dbt.profile, spec.dbt.target) == (None, "prod")
    assert spec.tasks[0].runner.kind is RunnerKind.DBT


def test_ftp_watch_with_a_structured_secret() -> None:
    ftp = table(
        "dag.ftp_watch",
        secret="ftp_creds",
        port=2121,
        tls=True,
        directory="/incoming/sales",
        pattern="sales_*.csv",
        archive_dir="/archive/sales",
        poll_interval="45s",
        stable_seconds=10,
    )
    spec = parse_ok(pit_toml(dag(), ftp, task("a")))

    watch = spec.ftp_watch
    assert watch is not None
    assert (watch.secret, watch.host, watch.user) == ("ftp_creds", None, None)
    assert (watch.port, watch.tls, watch.directory, watch.pattern) == (
        2121,
        True,
        "/incoming/sales",
        "sales_*.csv",
    )
    assert (watch.archive_dir, watch.poll_interval, watch.stable_seconds) == (
        "/archive/sales",
        45.0,
        10,
    )


def test_ftp_watch_with_legacy_host_user_password_secret() -> None:
    ftp = table(
        "dag.ftp_watch",
        host="ftp.example.com",
        user="data_user",
        password_secret="ftp_password",
        directory="/incoming",
    )
    spec = parse_ok(pit_toml(dag(), ftp, task("a")))

    watch = spec.ftp_watch
    assert watch is not None
    # The original's form, read into the one shape: the secret holds the password.
    assert (watch.secret, watch.host, watch.user) == (
        "ftp_password",
        "ftp.example.com",
        "data_user",
    )
    assert (watch.port, watch.tls, watch.pattern, watch.poll_interval) == (None, None, "*", 30.0)


def test_webhook() -> None:
    spec = parse_ok(pit_toml(dag(), table("dag.webhook", token_secret="deploy_token"), task("a")))

    assert spec.webhook is not None
    assert spec.webhook.token_secret == "deploy_token"


def test_outputs_keep_extra_fields() -> None:
    output = table(
        "[[outputs]]",
        name="daily_report",
        type="email",
        location="reports/daily.pdf",
        recipients=["ops@example.com", "cfo@example.com"],
        subject="Daily",
    )
    spec = parse_ok(pit_toml(dag(), task("a"), output))

    (report,) = spec.outputs
    assert (report.name, report.type, report.location) == (
        "daily_report",
        "email",
        "reports/daily.pdf",
    )
    assert dict(report.extra) == {
        "recipients": ["ops@example.com", "cfo@example.com"],
        "subject": "Daily",
    }


# --- runners -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "kind"),
    [("tasks/a.py", RunnerKind.PYTHON), ("tasks/a.sh", RunnerKind.BASH), ("a.sql", RunnerKind.SQL)],
)
def test_runner_by_extension(script: str, kind: RunnerKind) -> None:
    spec = parse_ok(pit_toml(dag(), task("a", script=script)))

    assert spec.tasks[0].runner == Runner(kind=kind)


def test_custom_runner_prefix_words() -> None:
    spec = parse_ok(pit_toml(dag(), task("a", script="tasks/a.js", runner="$ node --flag")))

    assert spec.tasks[0].runner == Runner(kind=RunnerKind.CUSTOM, prefix=("node", "--flag"))


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        ("bash", Runner(kind=RunnerKind.BASH)),
        ("$ python3 -X dev", Runner(kind=RunnerKind.CUSTOM, prefix=("python3", "-X", "dev"))),
    ],
)
def test_runner_overrides_the_extension(runner: str, expected: Runner) -> None:
    spec = parse_ok(pit_toml(dag(), task("a", script="tasks/a.py", runner=runner)))

    assert spec.tasks[0].runner == expected


def test_unknown_extension_without_runner() -> None:
    spec, problems = parse(pit_toml(dag(), task("a", script="tasks/a.js")))

    assert spec is None
    problem = the_problem(problems, "tasks[0].script")
    assert "no runner for 'tasks/a.js'" in problem.message
    assert 'runner = "$ node"' in problem.fix
    assert len(problems) == 1


@pytest.mark.parametrize("runner", ["perl", "Python", "$", "$   "])
def test_unknown_runner(runner: str) -> None:
    spec, problems = parse(pit_toml(dag(), task("a", script="tasks/a.py", runner=runner)))

    assert spec is None
    problem = the_problem(problems, "tasks[0].runner")
    assert f"'{runner}' is not a runner" in problem.message
    assert "'$ command'" in problem.fix


# --- one failing case per rule -------------------------------------------------------------------


def test_malformed_toml_reports_line_and_column() -> None:
    text = '[dag]\nname = "etl"\nschedule = 0 6 * * *\n'

    spec, problems = parse(text)

    assert spec is None
    (problem,) = problems
    assert problem.file == FILE
    assert problem.key == ""
    assert problem.message.startswith("not valid TOML:")
    assert "line 3" in problem.message
    assert "column" in problem.message
    assert problem.fix


def test_missing_dag_table() -> None:
    spec, problems = parse(pit_toml(task("a")))

    assert spec is None
    problem = the_problem(problems, "dag")
    assert problem.message == "missing [dag] table"
    assert 'name = "..."' in problem.fix


def test_dag_that_is_not_a_table() -> None:
    spec, problems = parse('dag = "etl"\n\n' + task("a"))

    assert spec is None
    assert the_problem(problems, "dag").message == "expected a table, got a string"


def test_missing_dag_name() -> None:
    spec, problems = parse(pit_toml(dag(name=None, schedule="0 6 * * *"), task("a")))

    assert spec is None
    assert the_problem(problems, "dag.name").message == "is required"


def test_empty_dag_name() -> None:
    spec, problems = parse(pit_toml(dag(name="  "), task("a")))

    assert spec is None
    assert the_problem(problems, "dag.name").message == "must not be empty"


def test_dag_without_tasks() -> None:
    spec, problems = parse(pit_toml(dag()))

    assert spec is not None
    problem = the_problem(problems, "tasks")
    assert problem.message == "the DAG has no tasks"
    assert "[[tasks]]" in problem.fix


def test_tasks_written_as_a_single_table() -> None:
    _, problems = parse(pit_toml(dag(), table("tasks", name="a", script="a.py")))

    assert [p.message for p in problems if p.key == "tasks"] == [
        "expected an array of tables ([[tasks]]), got a table",
        "the DAG has no tasks",
    ]


def test_task_entry_that_is_not_a_table() -> None:
    _, problems = parse(pit_toml("tasks = [1]", dag()))

    problem = the_problem(problems, "tasks[0]")
    assert problem.message == "expected a table"
    assert problem.fix == "use [[tasks]]"


@pytest.mark.parametrize("missing", ["name", "script"])
def test_task_needs_name_and_script(missing: str) -> None:
    keys = {"name": "a", "script": "a.py"}
    del keys[missing]

    spec, problems = parse(pit_toml(dag(), table("[[tasks]]", **keys)))

    assert spec is None
    assert the_problem(problems, f"tasks[0].{missing}").message == "is required"


@pytest.mark.parametrize("overlap", ["skip", "queue", "allow"])
def test_overlap_policies(overlap: str) -> None:
    assert parse_ok(pit_toml(dag(overlap=overlap), task("a"))).overlap == overlap


def test_invalid_overlap() -> None:
    spec, problems = parse(pit_toml(dag(overlap="parallel"), task("a")))

    assert spec is not None  # the rest of the file is still checked
    problem = the_problem(problems, "dag.overlap")
    assert problem.message == "'parallel' is not an overlap policy"
    assert problem.fix == "use one of skip, queue, allow, latest"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        (dag(timeout="forever"), "dag.timeout"),
        (task("a", timeout="10 minutes"), "tasks[0].timeout"),
        (task("a", retry_delay="-5s"), "tasks[0].retry_delay"),
    ],
)
def test_bad_duration(section: str, key: str) -> None:
    sections = [section, task("b")] if section.startswith("[dag]") else [dag(), section]

    _, problems = parse(pit_toml(*sections))

    problem = the_problem(problems, key)
    assert "is not a duration" in problem.message
    assert "'30s'" in problem.message
    assert len(problems) == 1


def test_bad_ftp_poll_interval() -> None:
    ftp = table("dag.ftp_watch", secret="ftp", directory="/in", poll_interval="often")

    _, problems = parse(pit_toml(dag(), ftp, task("a")))

    assert (
        "'often' is not a duration" in the_problem(problems, "dag.ftp_watch.poll_interval").message
    )


def test_duration_of_the_wrong_type() -> None:
    _, problems = parse(pit_toml(dag(), task("a", timeout=30)))

    problem = the_problem(problems, "tasks[0].timeout")
    assert problem.message == "expected a duration string such as '30s', got an integer"


def test_git_url_without_git_ref() -> None:
    _, problems = parse(pit_toml(dag(git_url="git@example.com:c/claims.git"), task("a")))

    problem = the_problem(problems, "dag.git_ref")
    assert problem.message == "git_url and git_ref must be set together"
    assert problem.fix == "add git_ref, or remove the other"


def test_git_ref_without_git_url() -> None:
    _, problems = parse(pit_toml(dag(git_ref="main"), task("a")))

    problem = the_problem(problems, "dag.git_url")
    assert problem.message == "git_url and git_ref must be set together"
    assert problem.fix == "add git_url, or remove the other"


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example/team/claims.git",
        "ssh://git@git.example:2222/claims.git",
        "git@github.com:company/claims.git",
        "file:///srv/git/claims.git",
    ],
)
def test_git_urls_git_can_fetch_are_accepted(url: str) -> None:
    spec = parse_ok(pit_toml(dag(git_url=url, git_ref="main", fetch_timeout="30s"), task("a")))
    assert spec.git_url == url
    assert spec.fetch_timeout == 30
    assert not spec.offline_ok


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ext::sh -c touch% /tmp/pwned", "asks for a git remote helper"),
        ("not a url", "is not a URL git can fetch"),
        ("/srv/git/claims.git", "is not a URL git can fetch"),
    ],
)
def test_a_git_url_git_cannot_or_must_not_fetch_is_a_problem(url: str, said: str) -> None:
    _, problems = parse(pit_toml(dag(git_url=url, git_ref="main"), task("a")))
    assert said in the_problem(problems, "dag.git_url").message


@pytest.mark.parametrize("ref", ["feature/x y", "a..b", "-x", "v1.lock", "x^", "br/.hidden"])
def test_a_git_ref_git_would_refuse_is_a_problem(ref: str) -> None:
    _, problems = parse(pit_toml(dag(git_url="https://g.example/r.git", git_ref=ref), task("a")))
    assert the_problem(problems, "dag.git_ref").fix == "a branch, a tag or a commit SHA"


def test_fetch_timeout_and_offline_ok_need_a_git_backed_dag() -> None:
    _, problems = parse(pit_toml(dag(fetch_timeout="1m", offline_ok=True), task("a")))
    assert the_problem(problems, "dag.offline_ok").message == "applies to git-backed DAGs only"
    assert the_problem(problems, "dag.fetch_timeout").fix == "set git_url, or remove it"


def test_webhook_without_token_secret() -> None:
    spec, problems = parse(pit_toml(dag(), "[dag.webhook]", task("a")))

    problem = the_problem(problems, "dag.webhook.token_secret")
    assert problem.message == "a webhook needs a token"
    assert "token_secret" in problem.fix
    assert spec is not None
    assert spec.webhook is None


def test_webhook_with_an_empty_token_secret_is_reported() -> None:
    # An empty secret name cannot hold a token: the webhook must not vanish without a word.
    spec, problems = parse(pit_toml(dag(), table("dag.webhook", token_secret=""), task("a")))

    assert spec is not None
    the_problem(problems, "dag.webhook.token_secret")


def test_ftp_watch_without_credentials() -> None:
    _, problems = parse(pit_toml(dag(), table("dag.ftp_watch", directory="/in"), task("a")))

    problem = the_problem(problems, "dag.ftp_watch.secret")
    assert problem.message == "FTP credentials are missing"
    assert "host, user and password_secret" in problem.fix


def test_ftp_watch_with_incomplete_legacy_credentials() -> None:
    ftp = table("dag.ftp_watch", directory="/in", host="ftp.example.com", user="data_user")

    _, problems = parse(pit_toml(dag(), ftp, task("a")))

    assert the_problem(problems, "dag.ftp_watch.secret").message == "FTP credentials are missing"


def test_ftp_watch_with_both_credential_forms() -> None:
    ftp = table("dag.ftp_watch", directory="/in", secret="ftp", host="ftp.example.com")

    _, problems = parse(pit_toml(dag(), ftp, task("a")))

    problem = the_problem(problems, "dag.ftp_watch.secret")
    assert "either secret or host/user/password_secret, not both" in problem.message


def test_ftp_watch_without_directory() -> None:
    spec, problems = parse(pit_toml(dag(), table("dag.ftp_watch", secret="ftp"), task("a")))

    assert the_problem(problems, "dag.ftp_watch.directory").message == "is required"
    assert spec is not None
    assert spec.ftp_watch is None


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ({"port": 0}, "dag.ftp_watch.port", "must be from 1 to 65535, got 0"),
        ({"port": 70000}, "dag.ftp_watch.port", "must be from 1 to 65535, got 70000"),
        (
            {"stable_seconds": 10**6},
            "dag.ftp_watch.stable_seconds",
            "must be from 0 to 86400, got 1000000",
        ),
        ({"tls": "yes"}, "dag.ftp_watch.tls", "expected true or false, got a string"),
        ({"stable_seconds": -1}, "dag.ftp_watch.stable_seconds", "must be from 0 to 86400, got -1"),
    ],
)
def test_ftp_watch_bad_values(keys: dict[str, object], key: str, message: str) -> None:
    ftp = table("dag.ftp_watch", secret="ftp", directory="/in", **keys)

    _, problems = parse(pit_toml(dag(), ftp, task("a")))

    assert the_problem(problems, key).message == message


@pytest.mark.parametrize(
    ("missing", "fix"),
    [
        ("version", 'add version = "1.9.1" to [dag.dbt]'),
        ("adapter", 'add adapter = "dbt-sqlserver"'),
    ],
)
def test_incomplete_dbt_config_names_the_missing_key(missing: str, fix: str) -> None:
    keys = {"version": "1.9.1", "adapter": "dbt-sqlserver", "connection": "db", "project_dir": "d"}
    del keys[missing]

    spec, problems = parse(
        pit_toml(dag(), table("dag.dbt", **keys), task("m", "run", runner="dbt"))
    )

    problem = the_problem(problems, f"dag.dbt.{missing}")
    assert problem.message == "is required for dbt"
    assert problem.fix.startswith(fix)
    assert len(problems) == 1
    assert spec is not None


def test_dbt_without_connection_loads_as_the_original_did() -> None:
    # The original Pit checks the dbt connection at run time only; its files must load.
    keys = {"version": "1.9.1", "adapter": "dbt-sqlserver", "project_dir": "d"}

    spec = parse_ok(pit_toml(dag(), table("dag.dbt", **keys), task("m", "run", runner="dbt")))

    assert spec.dbt is not None
    assert spec.dbt.connection is None


def test_dbt_project_dir_is_required_for_a_local_dag() -> None:
    dbt = table("dag.dbt", version="1.9.1", adapter="dbt-sqlserver", connection="db")

    _, problems = parse(pit_toml(dag(), dbt, task("m", "run", runner="dbt")))

    problem = the_problem(problems, "dag.dbt.project_dir")
    assert "is required for dbt" in problem.message
    assert "project_dir =" in problem.fix


def test_dbt_project_dir_is_optional_for_a_git_backed_dag() -> None:
    dbt = table("dag.dbt", version="1.9.1", adapter="dbt-sqlserver", connection="db")

    spec = parse_ok(
        pit_toml(
            dag(git_url="https://g.example/u", git_ref="main"), dbt, task("m", "run", runner="dbt")
        )
    )

    assert spec.dbt is not None
    assert spec.dbt.project_dir is None


def test_unknown_keep_artifacts_value() -> None:
    _, problems = parse(pit_toml(dag(keep_artifacts=["logs", "snapshots"]), task("a")))

    problem = the_problem(problems, "dag.keep_artifacts")
    assert problem.message == "'snapshots' is not a run artifact"
    assert problem.fix == "use any of logs, project, data"


def test_keep_artifacts_must_be_strings() -> None:
    _, problems = parse(pit_toml(dag(keep_artifacts=["logs", 1]), task("a")))

    assert the_problem(problems, "dag.keep_artifacts").message == "expected a list of strings"


def test_max_active_tasks_must_be_positive() -> None:
    spec, problems = parse(pit_toml(dag(max_active_tasks=0), task("a")))

    assert the_problem(problems, "dag.max_active_tasks").message == "must be from 1 to 1000, got 0"
    assert spec is not None
    assert spec.max_active_tasks == DEFAULT_MAX_ACTIVE_TASKS


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ({"retries": "2"}, "tasks[0].retries", "expected an integer, got a string"),
        ({"retries": 1.5}, "tasks[0].retries", "expected an integer, got a number"),
        ({"retries": True}, "tasks[0].retries", "expected an integer, got a boolean"),
        ({"retries": -1}, "tasks[0].retries", "must be from 0 to 100, got -1"),
        ({"retry_backoff": 0.5}, "tasks[0].retry_backoff", "must be from 1 to 10, got 0.5"),
        ({"retry_backoff": "2x"}, "tasks[0].retry_backoff", "expected a number, got a string"),
        ({"depends_on": "a"}, "tasks[0].depends_on", "expected a list of strings, got a string"),
        ({"depends_on": [1]}, "tasks[0].depends_on", "expected a list of strings"),
    ],
)
def test_task_values_of_the_wrong_type_or_range(
    keys: dict[str, object], key: str, message: str
) -> None:
    _, problems = parse(pit_toml(dag(), task("b", **keys)))

    assert the_problem(problems, key).message == message


def test_retry_backoff_rejects_a_boolean() -> None:
    # TOML keeps booleans and numbers apart; `true` must not be read as a backoff of 1.0.
    _, problems = parse(pit_toml(dag(), task("a", retry_backoff=True)))

    assert the_problem(problems, "tasks[0].retry_backoff").message == (
        "expected a number, got a boolean"
    )


# --- unknown keys --------------------------------------------------------------------------------


def test_unknown_task_key_with_did_you_mean() -> None:
    spec, problems = parse(pit_toml(dag(), task("a", retires=2)))

    problem = the_problem(problems, "tasks[0].retires")
    assert problem.message == "unknown key"
    assert problem.fix == "did you mean 'retries'?"
    assert str(problem) == f"{FILE}: tasks[0].retires: unknown key (did you mean 'retries'?)"
    assert spec is not None  # an unknown key does not stop the rest of the checks


@pytest.mark.parametrize(
    ("sections", "key", "suggestion"),
    [
        ([dag(shedule="0 6 * * *"), task("a")], "dag.shedule", "schedule"),
        ([dag(), task("a"), task("b", depends=["a"])], "tasks[1].depends", "depends_on"),
        ([dag(), task("a"), "[[task]]"], "task", "tasks"),
        (
            [dag(), table("dag.webhook", tokn_secret="t"), task("a")],
            "dag.webhook.tokn_secret",
            "token_secret",
        ),
        (
            [dag(), table("dag.ftp_watch", secret="f", directory="/in", patern="*"), task("a")],
            "dag.ftp_watch.patern",
            "pattern",
        ),
        ([dag(), table("dag.sql", conection="db"), task("a")], "dag.sql.conection", "connection"),
        (
            [
                dag(),
                table("dag.dbt", version="1", adapter="a", connection="c", project_di="d"),
                task("a"),
            ],
            "dag.dbt.project_di",
            "project_dir",
        ),
    ],
)
def test_unknown_keys_at_every_level(sections: list[str], key: str, suggestion: str) -> None:
    _, problems = parse(pit_toml(*sections))

    problem = the_problem(problems, key)
    assert problem.message == "unknown key"
    assert problem.fix == f"did you mean '{suggestion}'?"


def test_unknown_key_with_nothing_close_has_no_hint() -> None:
    _, problems = parse(pit_toml(dag(), task("a", colour="blue")))

    problem = the_problem(problems, "tasks[0].colour")
    assert problem.message == "unknown key"
    assert problem.fix == ""
    assert str(problem) == f"{FILE}: tasks[0].colour: unknown key"


def test_outputs_need_name_type_and_location() -> None:
    spec, problems = parse(pit_toml(dag(), task("a"), table("[[outputs]]", name="o", type="t")))

    assert the_problem(problems, "outputs[0].location").message == "is required"
    assert spec is None


# --- every problem in one pass -------------------------------------------------------------------


def test_a_broken_file_reports_every_problem_at_once() -> None:
    text = pit_toml(
        dag(name=None, overlap="sometimes", timeout="1 hour", keep_artifacts=["logz"]),
        table("dag.webhook"),
        table("dag.ftp_watch", directory="/in", host="ftp.example.com"),
        task("extract", retires=2, retry_delay="soon"),
        task("report", script="tasks/report.rb"),
        task("load", timeout=5, depends_on=["extract"]),
        "[[outputz]]",
    )

    spec, problems = parse(text)

    assert spec is None
    assert {p.file for p in problems} == {FILE}
    assert {p.key: p.message for p in problems} == {
        "dag.name": "is required",
        "dag.overlap": "'sometimes' is not an overlap policy",
        "dag.timeout": (
            "'1 hour' is not a duration; write it like '30s', '15m', '1h30m' or '500ms'"
        ),
        "dag.keep_artifacts": "'logz' is not a run artifact",
        "dag.webhook.token_secret": "a webhook needs a token",
        "dag.ftp_watch.secret": "FTP credentials are missing",
        "tasks[0].retires": "unknown key",
        "tasks[0].retry_delay": (
            "'soon' is not a duration; write it like '30s', '15m', '1h30m' or '500ms'"
        ),
        "tasks[1].script": "no runner for 'tasks/report.rb'",
        "tasks[2].timeout": "expected a duration string such as '30s', got an integer",
        "outputz": "unknown key",
    }
    assert len(problems) == 11


def test_problems_come_back_for_the_file_they_were_asked_for() -> None:
    _, problems = parse_dag(pit_toml(dag(overlap="x"), task("a")), "projects/other/pit.toml")

    assert [p.file for p in problems] == ["projects/other/pit.toml"]
