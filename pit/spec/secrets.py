"""The secrets TOML: `[global]` and per-project sections of plain and structured secrets.

Resolution looks in the project's section first, then `[global]`. Values never leave this object
except through `resolve`/`resolve_field`; they never enter a task's environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from pit.errors import PitError
from pit.spec.dag import parse_toml
from pit.spec.problems import Problem

GLOBAL = "global"
Secret = str | Mapping[str, str]


class SecretNotFound(PitError):
    """Raised when a task asks for a secret (or a field of one) that no searched section holds."""


@attrs.frozen(kw_only=True)
class Secrets:
    sections: Mapping[str, Mapping[str, Secret]] = attrs.field(factory=dict)

    def find(self, project: str, key: str) -> Secret:
        """A secret as written: a plain value or a table of fields."""
        for section in (project, GLOBAL):
            if key in self.sections.get(section, {}):
                return self.sections[section][key]
        raise SecretNotFound(f"secret '{key}' not found in sections [{project}] or [{GLOBAL}]")

    def values(self) -> set[str]:
        """Every secret value and structured field value: what task output must not show."""
        found: set[str] = set()
        for section in self.sections.values():
            for secret in section.values():
                found.update([secret] if isinstance(secret, str) else secret.values())
        return found

    def resolve(self, project: str, key: str) -> str:
        """A plain secret's value, or a structured one's fields as a JSON object string."""
        value = self.find(project, key)
        return value if isinstance(value, str) else json.dumps(dict(value))

    def resolve_field(self, project: str, secret: str, field: str) -> str:
        value = self.find(project, secret)
        if isinstance(value, str):
            raise SecretNotFound(f"secret '{secret}' is a plain value and has no field '{field}'")
        if field not in value:
            fields = ", ".join(sorted(value)) or "none"
            raise SecretNotFound(f"secret '{secret}' has no field '{field}' (it has: {fields})")
        return value[field]


def parse_secrets(text: str, file: str) -> tuple[Secrets, list[Problem]]:
    raw, problems = parse_toml(text, file)
    if raw is None:
        return Secrets(), problems
    sections: dict[str, dict[str, Secret]] = {}
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
    return Secrets(sections=sections), problems


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
