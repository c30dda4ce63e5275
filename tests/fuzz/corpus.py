"""Inputs for fuzzing the config surfaces, and the property every input must keep.

Shared by `tests/fuzz/test_spec_fuzz.py` (hypothesis drives the `random.Random` given to the
generators, so a failure shrinks and replays) and `bench/fuzz_spec.py` (many inputs, no pytest).

Two surfaces, `pit.toml` and `pit_config.toml`. Inputs come two ways: generated documents (pit's
own keys, in odd places, with sane and hostile values) and mutations of seeds (the shipped
examples plus a rich generated file): byte flips, truncations, duplicated lines, huge numbers,
deep nesting, NUL bytes, long strings, unicode.

The property (`check`): parsing and validating returns problems and never raises; a file that
validates without errors can be turned into what a run needs without an exception: log and data
paths stay inside the run folder, durations are finite, the time zone loads, the schedule fires.
"""

from __future__ import annotations

import datetime as dt
import math
import posixpath
import random
import zoneinfo
from collections.abc import Callable
from pathlib import Path

from pit.actors.masking import MIN_LENGTH, Masker
from pit.spec.cron import next_fire
from pit.spec.dag import DagSpec, read_dag
from pit.spec.problems import Problem
from pit.spec.secrets import field_of, parse_secrets
from pit.spec.validate import validate_dag, validate_secret_names
from pit.spec.workspace import WorkspaceConfig, parse_workspace_config

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = "projects/fuzz/pit.toml"
CONFIG_FILE = "pit_config.toml"
NAME_MAX = 255
"""The longest file name Linux takes (one path component)."""

# --- values ---------------------------------------------------------------------------------

SANE = [
    "etl", "a", "b", "extract", "tasks/a.py", "tasks/b.sh", "q.sql", "x.js", "$ node", "$",
    "python", "bash", "sql", "dbt", "run", "30s", "1h30m", "500ms", "1d", "skip", "queue",
    "wait", "allow", "save", "load", "append", "create_or_replace", "0 6 * * *", "*/5 * * * *",
    "UTC", "Europe/Berlin", "logs", "data", "warehouse", "sqlite:///w.db", "main", 0, 1, 2, 3,
    10, 21, 1.0, 2.0, 1.5, True, False, ["a"], ["b", "a"], ["logs", "data"], [],
]  # fmt: skip
HOSTILE = [
    math.nan, math.inf, -math.inf, -1, -1.5, 2**63, 2**64, 10**400, 1e308, 0.0, "", " ",
    "1" * 400 + "s", "9" * 30 + "d", "0s", "a/b", "../../../escape", "..", ".", "x" * 300,
    "Europe", "Europe/", "../../etc/passwd", "/etc/localtime", "Nope/Zone", "\x00", "a\x00b",
    "é", "名前", "\u202e", "61 * * * *", "0 0 31 2 *", "* * * *", "*/0 * * * *",
    "mysql://u@h/db", "sqlite:///" + "p" * 300, "$ " + "x" * 300, {"max_age": "24h"},
    {"other": {"max_age": "24h"}}, {"other": {"max_age": "nan"}}, [[1]], [1, "a"],
]  # fmt: skip
DAG_KEYS = [
    "name", "schedule", "timezone", "overlap", "timeout", "keep_artifacts", "max_active_tasks",
    "git_url", "git_ref", "requires", "scedule",
]  # fmt: skip
TASK_KEYS = [
    "name", "script", "runner", "depends_on", "timeout", "retries", "retry_delay",
    "retry_backoff", "type", "connection", "output", "source", "table", "mode", "schema",
    "retires",
]  # fmt: skip
SUBTABLE_KEYS = {
    "sql": ["connection"],
    "dbt": ["version", "adapter", "connection", "project_dir", "profile", "target", "extra_deps"],
    "ftp_watch": [
        "secret", "host", "user", "password_secret", "directory", "pattern", "port", "tls",
        "archive_dir", "poll_interval", "stable_seconds",
    ],
    "webhook": ["token_secret"],
}  # fmt: skip
OUTPUT_KEYS = ["name", "type", "location", "recipients"]
CONFIG_KEYS = [
    "secrets_dir", "runs_dir", "repo_cache_dir", "dbt_driver", "keep_artifacts",
    "max_active_tasks", "stop_grace", "max_active_runs", "shutdown_grace", "metadata_db",
    "api_token", "age_identity", "secrets_recipients", "runs_dri",
]  # fmt: skip


def toml_value(item: object) -> str:
    """`item` written as TOML, NaN and infinities included."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        if math.isnan(item):
            return "nan"
        if math.isinf(item):
            return "inf" if item > 0 else "-inf"
        return repr(item)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        escaped = item.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\u0000")
        return f'"{escaped}"'
    if isinstance(item, list):
        return "[" + ", ".join(toml_value(x) for x in item) + "]"
    if isinstance(item, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in item.items()) + "}"
    raise TypeError(item)


FITTING: dict[str, list[object]] = {
    "schedule": ["0 6 * * *", "*/5 * * * *", "0 0 29 2 *", "59 23 31 12 7", "0 2 * * MON-FRI"],
    "timezone": ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"],
    "overlap": ["skip", "queue", "wait", "allow"],
    "timeout": ["1s", "45m", "7d", "0.5s", "1h30m"],
    "retry_delay": ["0s", "1s", "7d", "500ms"],
    "poll_interval": ["1s", "7d", "30s"],
    "stop_grace": ["0s", "7d", "10s"],
    "shutdown_grace": ["0s", "7d", "60s"],
    "retries": [0, 1, 100],
    "retry_backoff": [1, 1.5, 10.0],
    "max_active_tasks": [1, 4, 1000],
    "max_active_runs": [1, 1000],
    "port": [1, 21, 65535],
    "stable_seconds": [0, 30, 86400],
    "keep_artifacts": [[], ["logs"], ["logs", "project", "data"]],
    "depends_on": [[], ["a"], ["a", "b"]],
    "runner": ["python", "bash", "$ node", "sql"],
    "type": ["script", "save"],
    "output": ["out", "a.b", "x" * 100],
    "connection": ["warehouse", "mine"],
    "requires": [{"other": {"max_age": "24h"}}, ["other"], {"o": {}}],
    "tls": [True, False],
    "name": ["a", "b", "x" * 100, "a.b-c_d"],
}
"""Values that fit each key, so that many generated files validate and reach `run_ready`."""


def any_value(rng: random.Random, key: str = "") -> object:
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(HOSTILE)
    if roll < 0.85 and key in FITTING:
        return rng.choice(FITTING[key])
    return rng.choice(SANE)


def _lines(rng: random.Random, keys: list[str], required: dict[str, object]) -> list[str]:
    chosen = dict(required)
    for key in rng.sample(keys, k=rng.randint(0, min(len(keys), 5))):
        chosen[key] = any_value(rng, key)
    return [f"{key} = {toml_value(value)}" for key, value in chosen.items()]


# --- generated documents --------------------------------------------------------------------


def generate_pit_toml(rng: random.Random) -> bytes:
    """A `pit.toml` made of pit's keys: half of them careful (fitting keys and values, so they
    mostly validate and reach `run_ready`), half anything goes."""
    if rng.random() < 0.5:
        return _careful_pit_toml(rng)
    parts = ["[dag]", *_lines(rng, DAG_KEYS, {"name": any_value(rng, "name")})]
    for table, keys in SUBTABLE_KEYS.items():
        if rng.random() < 0.25:
            parts += [f"[dag.{table}]", *_lines(rng, keys, {})]
    names = ["a", "b", "c", "d"]
    for index in range(rng.randint(0, 5)):
        required: dict[str, object] = {"name": names[index % 4], "script": "tasks/a.py"}
        if rng.random() < 0.5:
            required["depends_on"] = rng.sample(names, k=rng.randint(0, 2))
        parts += ["[[tasks]]", *_lines(rng, TASK_KEYS, required)]
    if rng.random() < 0.2:
        parts += ["[[outputs]]", *_lines(rng, OUTPUT_KEYS, {"name": "o"})]
    return ("\n".join(parts) + "\n").encode()


CAREFUL_DAG_KEYS = ["schedule", "timezone", "overlap", "timeout", "max_active_tasks", "requires"]
CAREFUL_TASK_KEYS = ["timeout", "retries", "retry_delay", "retry_backoff"]


def _careful_pit_toml(rng: random.Random) -> bytes:
    name = rng.choice(FITTING["name"]) if rng.random() < 0.9 else rng.choice(HOSTILE)
    parts = ["[dag]", *_careful_lines(rng, CAREFUL_DAG_KEYS, {"name": name})]
    parts += ['[dag.sql]\nconnection = "warehouse"']
    if rng.random() < 0.3:
        parts += ["[dag.ftp_watch]", 'secret = "ftp"', 'directory = "/in"']
        parts += _careful_lines(rng, ["port", "poll_interval", "stable_seconds", "tls"], {})
    names: list[str] = []
    for index in range(rng.randint(1, 5)):
        task = rng.choice([*FITTING["name"][:2], "c", "d", "e.f", "g-h"]) + str(index)
        required: dict[str, object] = {"name": task, "script": f"tasks/{index}.py"}
        if rng.random() < 0.2:
            required.update(script="q.sql", type="save", output=rng.choice(FITTING["output"]))
        if names:
            required["depends_on"] = rng.sample(names, k=rng.randint(0, len(names)))
        parts += ["[[tasks]]", *_careful_lines(rng, CAREFUL_TASK_KEYS, required)]
        names.append(task)
    return ("\n".join(parts) + "\n").encode()


def _careful_lines(rng: random.Random, keys: list[str], required: dict[str, object]) -> list[str]:
    chosen = dict(required)
    for key in rng.sample(keys, k=rng.randint(0, len(keys))):
        chosen[key] = rng.choice(FITTING[key]) if rng.random() < 0.95 else rng.choice(HOSTILE)
    return [f"{key} = {toml_value(value)}" for key, value in chosen.items()]


def generate_pit_config(rng: random.Random) -> bytes:
    return ("\n".join(_lines(rng, CONFIG_KEYS, {})) + "\n").encode()


SECRET_VALUES = [
    "postgresql://etl:pa55word@db.internal:5432/warehouse",
    "sqlserver://user:p%40ss@host:1433/db",
    "Driver={ODBC};Server=h;UID=u;PWD={we;ird};",
    "sqlite:///w.db",
    'quote"and\\backslash',
    "名前パスワード",
    "abc",
    "",
    "x" * 5000,
]
SECRET_FIELDS = ["host", "user", "password", "port", "database", "token", "api_key", "Sensitive"]


def generate_secrets(rng: random.Random) -> bytes:
    """A secrets file: [global] and project sections, plain and structured secrets, some of
    them marking fields `sensitive`, values hostile and not."""
    parts: list[str] = []
    for section in rng.sample(["global", "etl", "ws.x", "名"], k=rng.randint(1, 3)):
        parts.append(f"[{toml_value(section)}]" if "." in section else f"[{section}]")
        for index in range(rng.randint(0, 4)):
            key = f"s{index}"
            if rng.random() < 0.5:
                value = rng.choice(SECRET_VALUES) if rng.random() < 0.8 else rng.choice(HOSTILE)
                parts.append(f"{key} = {toml_value(value)}")
                continue
            fields = {
                field: rng.choice(SECRET_VALUES) if rng.random() < 0.8 else rng.choice(HOSTILE)
                for field in rng.sample(SECRET_FIELDS, k=rng.randint(0, 5))
            }
            if rng.random() < 0.3:
                fields["sensitive"] = rng.choice(
                    [["host"], ["nosuch"], "host", [1], [], list(fields)]
                )
            inline = ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in fields.items())
            parts.append(f"{key} = {{ {inline} }}")
    return ("\n".join(parts) + "\n").encode()


# --- mutations ------------------------------------------------------------------------------


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randint(0, len(data))]


def _duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    line = rng.choice(lines)
    lines.insert(rng.randint(0, len(lines)), line)
    return b"\n".join(lines)


def _insert(data: bytes, rng: random.Random, piece: bytes) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + piece + data[at:]


def _replace_value(data: bytes, rng: random.Random) -> bytes:
    """Some `key = value` line gets a hostile value."""
    lines = data.split(b"\n")
    assignments = [i for i, line in enumerate(lines) if b" = " in line]
    if not assignments:
        return data
    index = rng.choice(assignments)
    key = lines[index].split(b" = ", 1)[0]
    lines[index] = key + b" = " + toml_value(rng.choice(HOSTILE)).encode()
    return b"\n".join(lines)


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    _flip,
    _truncate,
    _duplicate_line,
    _replace_value,
    _replace_value,
    lambda data, rng: _insert(data, rng, b"\nbig = " + b"9" * rng.choice([20, 400, 5000])),
    lambda data, rng: _insert(data, rng, b"\nx = " + b"[" * 3000 + b"]" * 3000 + b"\n"),
    lambda data, rng: _insert(data, rng, b"\nx = " + b"{a = " * 600 + b"1" + b"}" * 600),
    lambda data, rng: _insert(data, rng, b"\x00"),
    lambda data, rng: _insert(data, rng, b"\xff\xfe"),
    lambda data, rng: _insert(data, rng, b'"' + b"y" * rng.choice([300, 70_000]) + b'"'),
    lambda data, rng: _insert(data, rng, rng.choice(["é", "名", "\u202e", "😀"]).encode()),
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def seeds(surface: str) -> list[bytes]:
    """The shipped example files of `surface`, and a few generated ones to mutate."""
    rng = random.Random(surface)
    if surface == "pit.toml":
        shipped = sorted((ROOT / "examples" / "projects").glob("*/pit.toml"))
        generated = [generate_pit_toml(rng) for _ in range(8)]
    elif surface == "secrets.toml":
        shipped = sorted((ROOT / "examples").glob("secrets.toml"))
        generated = [generate_secrets(rng) for _ in range(8)]
    else:
        shipped = sorted((ROOT / "examples").glob("pit_config.toml"))
        generated = [generate_pit_config(rng) for _ in range(8)]
    return [path.read_bytes() for path in shipped] + generated


def fuzz_input(surface: str, rng: random.Random, corpus: list[bytes]) -> bytes:
    """One input: half generated, half a mutated seed."""
    if rng.random() < 0.5:
        return GENERATORS[surface](rng)
    return mutate(rng.choice(corpus), rng)


# --- the property ---------------------------------------------------------------------------

FIXED_NOW = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
"""A moment near a daylight-saving change, for schedules."""


SECRETS, _ = parse_secrets(
    '[global]\nwarehouse = "sqlite:///w.db"\nmine = "mysql://u@h/db"\n'
    '[global.ftp]\nhost = "h"\nuser = "u"\npassword = "p"\n',
    "secrets.toml",
)


def _errors(problems: list[Problem]) -> list[Problem]:
    for problem in problems:
        assert isinstance(problem, Problem), problem
        assert problem.message, problem
        str(problem)
        problem.to_json()
    return [p for p in problems if p.is_error]


def _inside(folder: str, name: str) -> None:
    """`folder/name` names a file directly inside `folder` that Linux can create."""
    assert "\x00" not in name, name
    assert 0 < len(name.encode()) <= NAME_MAX, name
    path = posixpath.normpath(posixpath.join(folder, name))
    assert posixpath.dirname(path) == folder, f"{name!r} leaves {folder}"


def _finite(seconds: float | None, what: str) -> None:
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0), (what, seconds)


def check_pit_toml(data: bytes) -> bool:
    """Raises (AssertionError or any bug) when the property breaks; True when `data` validated
    clean, so the run-ready checks ran too."""
    draft, problems = read_dag(data, DAG_FILE)
    if draft is not None:  # the cross-key rules run on whatever parsed
        problems += validate_dag(draft, DAG_FILE, lambda script: True)
    spec = draft.spec if draft is not None and draft.complete else None
    if spec is None:
        assert problems, "no spec must come with a reason"
        return False
    problems += validate_secret_names(spec, DAG_FILE, SECRETS)
    if _errors(problems):
        return False
    run_ready(spec)
    return True


def run_ready(dag: DagSpec) -> None:
    """What a run of `dag` computes up front, done here: nothing may raise or escape."""
    _inside("/runs", f"20260101_000000.000_{dag.name}")
    _finite(dag.timeout, "dag.timeout")
    assert 1 <= dag.max_active_tasks <= 10_000
    tz = zoneinfo.ZoneInfo(dag.timezone) if dag.timezone else dt.UTC
    if dag.schedule:
        assert next_fire(dag.schedule, FIXED_NOW, tz) > FIXED_NOW
    for task in dag.tasks:
        _inside("/runs/r/logs", f"{task.name}.log")
        for name in (task.sql.output, task.sql.source):
            if name is not None:
                _inside("/runs/r/data", f"{name}.parquet")
        assert "\x00" not in task.script
        assert len(task.script) <= 4096
        _finite(task.timeout, "timeout")
        assert 0 <= task.retries <= 1000, task.retries
        for retry in range(1, task.retries + 1):
            _finite(task.retry_wait(retry), "retry wait")
    if dag.ftp_watch:
        _finite(dag.ftp_watch.poll_interval, "poll_interval")
        assert dag.ftp_watch.poll_interval > 0
        assert dag.ftp_watch.port is None or 0 < dag.ftp_watch.port < 65536


def check_pit_config(data: bytes) -> bool:
    config, problems = parse_workspace_config(data, CONFIG_FILE)
    if _errors(problems):
        return False
    config_ready(config)
    return True


def config_ready(config: WorkspaceConfig) -> None:
    for seconds in (config.stop_grace, config.shutdown_grace):
        _finite(seconds, "grace")
    for cap in (config.max_active_runs, config.max_active_tasks):
        assert cap is None or 1 <= cap <= 10_000, cap
    for path in (config.runs_dir, config.repo_cache_dir, config.secrets_path or "x"):
        assert "\x00" not in path, path
        assert 0 < len(path) <= 4096, path
        Path("/workspace", path).resolve()  # what load_workspace does with runs_dir


def check_secrets(data: bytes) -> bool:
    """A secrets file parses to problems or to secrets every one of which resolves, and whose
    sensitive values a masker hides wherever they appear."""
    secrets, problems = parse_secrets(data, "secrets.toml")
    if _errors(problems):
        return False
    values = secrets.values()
    masker = Masker(values)
    for value in values:
        assert isinstance(value, str)
        if len(value) >= MIN_LENGTH:
            shown = masker.feed(f"<{value}>".encode()) + masker.flush()
            assert value.encode() not in shown, value
    for project, section in secrets.sections.items():
        for key, secret in section.items():
            secrets.resolve(project, key)
            for field in secret if not isinstance(secret, str) else ():
                field_of(key, secrets.find(project, key), field)
    return True


CHECKS: dict[str, Callable[[bytes], bool]] = {
    "pit.toml": check_pit_toml,
    "pit_config.toml": check_pit_config,
    "secrets.toml": check_secrets,
}

GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "pit.toml": generate_pit_toml,
    "pit_config.toml": generate_pit_config,
    "secrets.toml": generate_secrets,
}
