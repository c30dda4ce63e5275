"""The DAGs `pit serve` serves: each project's last good configuration, through every reload.

Pure: fed a freshly loaded `Workspace`, it keeps the projects that validate, keeps the last
good version of one that no longer does, forgets the ones gone, and says what it did as lines
for the log. The supervisor holds one and restarts the triggers of what changed.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from pit.messages.web import ApiTokens
from pit.spec.dag import DagSpec
from pit.spec.load import Project, Workspace
from pit.spec.secrets import GLOBAL, SecretNotFound, Secrets


@attrs.frozen(kw_only=True)
class Adopted:
    problems: list[str]
    """Each problem of a project not taken, saying whether its last good version is kept."""
    removed: list[str]
    """DAGs gone from the workspace."""


@attrs.define
class Catalog:
    _projects: dict[str, Project] = attrs.field(factory=dict)
    """DAG name -> its last good project."""
    _folders: dict[str, str] = attrs.field(factory=dict)
    """Project folder -> the name of its DAG, as last read well (a pit.toml that no longer
    parses may have lost its name)."""

    def adopt(self, workspace: Workspace, *, first: bool) -> Adopted:
        """Take the workspace's valid projects; say what became of the rest."""
        problems, removed, seen = [], [], set()
        for project in workspace.projects:
            name = (
                project.dag.name
                if project.dag
                else self._folders.get(project.folder, project.folder)
            )
            seen.add(name)
            if project.problems or project.dag is None:
                kept = " (keeping its last good configuration)" if name in self._projects else ""
                problems += [f"{problem}{kept}" for problem in project.problems]
                continue
            self._projects[name] = project
            self._folders[project.folder] = name
        if not first:
            for name in [n for n in self._projects if n not in seen]:
                removed.append(name)
                del self._projects[name]
        return Adopted(problems=problems, removed=removed)

    def get(self, dag: str) -> Project | None:
        return self._projects.get(dag)

    def dag(self, name: str) -> DagSpec | None:
        project = self._projects.get(name)
        return project.dag if project is not None else None

    def dags(self) -> Iterator[DagSpec]:
        return (p.dag for p in self._projects.values() if p.dag is not None)

    def __len__(self) -> int:
        return len(self._projects)

    def webhook_tokens(self, secrets: Secrets | None) -> tuple[dict[str, str | None], list[str]]:
        """Every webhook DAG's token (None when it cannot be read), and why any cannot."""
        tokens: dict[str, str | None] = {}
        said = []
        for dag in self.dags():
            if dag.webhook is None:
                continue
            secret = dag.webhook.token_secret
            tokens[dag.name] = None
            if secrets is None:
                said.append(f"{dag.name}: webhook token '{secret}' cannot be read: no secrets file")
                continue
            try:
                tokens[dag.name] = secrets.resolve(dag.name, secret)
            except SecretNotFound as exc:
                said.append(f"{dag.name}: {exc}")
        return tokens, said


def api_tokens(workspace: Workspace, secrets: Secrets | None) -> ApiTokens:
    """The API's tokens: the secrets pit_config.toml's `api_token` and `api_read_token` name
    (looked up in the secrets file's [global] section)."""
    config = workspace.config
    names = {"api_token": config.api_token, "api_read_token": config.api_read_token}
    found: dict[str, str | None] = dict.fromkeys(names)
    unreadable = []
    for key, secret in names.items():
        if secret is None:
            continue
        if secrets is None:
            unreadable.append(f"{key} names secret '{secret}', and pit has no secrets file")
            continue
        try:
            found[key] = secrets.resolve(GLOBAL, secret)
        except SecretNotFound as exc:
            unreadable.append(f"{key}: {exc}")
    return ApiTokens(
        full=found["api_token"],
        read_only=found["api_read_token"],
        unreadable="; ".join(unreadable) or None,
    )
