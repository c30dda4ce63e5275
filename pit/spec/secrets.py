"""The secrets TOML: `[global]` and per-project sections of plain and structured secrets.

Resolution looks in the project's section first, then `[global]`. Values never leave this object
except through `find`/`resolve`; they never enter a task's environment.

What must be masked (`Secrets.values`) is the sensitive part only: a plain secret whole; the
credential fields of a structured secret (`password`, `db_password`, `api_key`, `token`, ...)
and the fields it lists in `sensitive = ["field", ...]`; the password of any URL
(`postgresql://user:PASS@host/db`) or `key=value;` string (`...;PWD=xyz;`) in any secret. Its
host, port, database and user stay readable in logs. (`sensitive` is pit's own: the original
Pit's fields are strings only, so a list there cannot be an old file's field.)
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping

import attrs

from pit.errors import PitError
from pit.spec.problems import Problem
from pit.spec.toml import parse_toml

GLOBAL = "global"
SENSITIVE = "sensitive"
"""The key of a structured secret that lists more fields to mask: `sensitive = ["host"]`."""
Secret = str | Mapping[str, str]

_CREDENTIAL_WORDS = re.compile(
    r"pass|pwd|token|secret|key|credential|auth|private|signature|cookie|session", re.IGNORECASE
)
"""A field or `key=value` name holding a credential: password, passwd, db_password, PWD,
api_key, private_key, access_token, client_secret, credentials, auth, ..."""
_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://\S+")
"""A URL. The look-behind starts a match only where a scheme can start: without it, a long run
of letters with no `://` is tried from every position, in quadratic time (70 KB took 3.5 s)."""
_KEY_VALUE = re.compile(r"(?:^|;)\s*([^=;]+?)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")
"""`key=value` pairs of an ODBC or ADO.NET connection string; a value may be `{braced}`."""


class SecretNotFound(PitError):
    """Raised when a task asks for a secret (or a field of one) that no searched section holds."""


@attrs.frozen(kw_only=True)
class Secrets:
    sections: Mapping[str, Mapping[str, Secret]] = attrs.field(factory=dict)
    marked: Mapping[tuple[str, str], frozenset[str]] = attrs.field(factory=dict)
    """(section, secret) -> the fields its `sensitive` list names."""

    def find(self, project: str, key: str) -> Secret:
        """A secret as written: a plain value or a table of fields."""
        for section in (project, GLOBAL):
            if key in self.sections.get(section, {}):
                return self.sections[section][key]
        raise SecretNotFound(f"secret '{key}' not found in sections [{project}] or [{GLOBAL}]")

    def values(self) -> set[str]:
        """What task output and pit's own messages must not show (see the module docstring),
        each also as it looks inside a JSON string."""
        found: set[str] = set()
        for section_name, section in self.sections.items():
            for key, secret in section.items():
                if isinstance(secret, str):
                    found.add(secret)
                    found.update(embedded_passwords(secret))
                    continue
                marked = self.marked.get((section_name, key), frozenset())
                for field, value in secret.items():
                    if field in marked or is_credential(field):
                        found.add(value)
                    found.update(embedded_passwords(value))
        found.discard("")
        return found | {form for value in found for form in _json_forms(value)}

    def resolve(self, project: str, key: str) -> str:
        """A plain secret's value, or a structured one's fields as a JSON object string."""
        return as_text(self.find(project, key))


def as_text(secret: Secret) -> str:
    """A plain secret's value, or a structured one's fields as a JSON object string."""
    return secret if isinstance(secret, str) else json.dumps(dict(secret))


def field_of(name: str, secret: Secret, field: str) -> str:
    """Field `field` of secret `name`, whose value is `secret`."""
    if isinstance(secret, str):
        raise SecretNotFound(f"secret '{name}' is a plain value and has no field '{field}'")
    if field not in secret:
        fields = ", ".join(sorted(secret)) or "none"
        raise SecretNotFound(f"secret '{name}' has no field '{field}' (it has: {fields})")
    return secret[field]


def parse_secrets(text: str, file: str) -> tuple[Secrets, list[Problem]]:
    raw, problems = parse_toml(text, file)
    if raw is None:
        return Secrets(), problems
    sections: dict[str, dict[str, Secret]] = {}
    marked: dict[tuple[str, str], frozenset[str]] = {}
    for section, entries in raw.items():
        if not isinstance(entries, dict):
            problems.append(
                Problem(
                    file=file,
                    key=section,
                    message="expected a section table",
                    fix=f"put it under [{GLOBAL}] or a [<project>] section",
                )
            )
            continue
        sections[section] = {}
        for key, value in entries.items():
            if isinstance(value, dict) and isinstance(value.get(SENSITIVE), list):
                value = dict(value)
                fields, problem = _marked_fields(value.pop(SENSITIVE), value)
                marked[(section, key)] = fields
                if problem:
                    problems.append(
                        Problem(
                            file=file,
                            key=f"{section}.{key}.{SENSITIVE}",
                            message=problem,
                            fix=f"list field names of this secret ({', '.join(sorted(value))})",
                        )
                    )
            secret = _secret_value(value)
            if secret is None:
                problems.append(
                    Problem(
                        file=file,
                        key=f"{section}.{key}",
                        message="a secret is a string or a table of strings",
                    )
                )
            else:
                sections[section][key] = secret
    return Secrets(sections=sections, marked=marked), problems


def is_credential(name: str) -> bool:
    """Whether a field (or `key=value`) name holds a credential: `password`, `db_pwd`, ..."""
    return _CREDENTIAL_WORDS.search(name) is not None


def embedded_passwords(text: str) -> Iterator[str]:
    """The passwords inside a value: of each URL (raw and decoded) and of each credential
    `key=value` pair (`PWD=xyz;`, `Password={a;b}`)."""
    for url in _URL.findall(text) if "://" in text else ():
        try:
            password = urllib.parse.urlsplit(url).password
        except ValueError:  # an unparsable netloc ([::1 without its bracket)
            continue
        if password:
            yield password
            yield urllib.parse.unquote(password)
    if "=" in text:
        for name, value in _KEY_VALUE.findall(text):
            if is_credential(name) and value:
                yield value
                if value.startswith("{") and value.endswith("}"):
                    yield value[1:-1].replace("}}", "}")


def _json_forms(value: str) -> set[str]:
    """`value` as it appears inside a JSON string (quotes, backslashes, non-ASCII escaped)."""
    return {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]} - {value}


def _marked_fields(listed: list[object], fields: dict[str, object]) -> tuple[frozenset[str], str]:
    """The fields a `sensitive` list names, and what is wrong with it ("" if nothing)."""
    names = frozenset(name for name in listed if isinstance(name, str))
    if len(names) != len(listed):
        return names, "a list of field names (strings)"
    unknown = sorted(names - fields.keys())
    if unknown:
        return names, f"names {', '.join(map(repr, unknown))}, not a field of this secret"
    return names, ""


def _secret_value(value: object) -> Secret | None:
    if isinstance(value, dict):
        fields = {k: _scalar(v) for k, v in value.items()}
        return None if any(v is None for v in fields.values()) else fields  # type: ignore[return-value]
    return _scalar(value)


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def dump_secrets(secrets: Secrets) -> str:
    """The TOML of `secrets`, read back by `parse_secrets` as the same secrets (`pit secrets`
    rewrites a file with it: comments in the file are not kept)."""
    lines: list[str] = []
    for section, entries in secrets.sections.items():
        lines.append(f"[{_toml_key(section)}]")
        lines += [
            f"{_toml_key(k)} = {_toml_str(v)}" for k, v in entries.items() if isinstance(v, str)
        ]
        lines.append("")
        for key, value in entries.items():
            if isinstance(value, str):
                continue
            lines.append(f"[{_toml_key(section)}.{_toml_key(key)}]")
            lines += [f"{_toml_key(field)} = {_toml_str(text)}" for field, text in value.items()]
            if fields := secrets.marked.get((section, key)):
                listed = ", ".join(_toml_str(field) for field in sorted(fields))
                lines.append(f"{SENSITIVE} = [{listed}]")
            lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def _toml_str(text: str) -> str:
    """A TOML basic string: JSON's string escapes are TOML's, and TOML escapes DEL too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
