"""The catalog of DAGs pit serve serves: the last good configuration through every reload."""

from __future__ import annotations

from pit.actors.catalog import Catalog
from pit.spec.load import load_workspace
from pit.spec.secrets import parse_secrets
from tests.conftest import Workspace

GOOD = '[dag]\nname = "nightly"\n\n[[tasks]]\nname = "good"\nscript = "t.sh"\n'


def test_an_invalid_edit_keeps_the_last_good_config_and_says_so(workspace: Workspace) -> None:
    workspace.project("nightly-folder", GOOD, {"t.sh": ":\n"})
    catalog = Catalog()
    assert catalog.adopt(load_workspace(workspace.root), first=True).problems == []

    workspace.write("projects/nightly-folder/pit.toml", "[dag\nname = 'nightly'\n")
    adopted = catalog.adopt(load_workspace(workspace.root), first=False)

    dag = catalog.dag("nightly")
    assert dag is not None
    assert [t.name for t in dag.tasks] == ["good"]
    (problem,) = adopted.problems
    assert problem.endswith("(keeping its last good configuration)")
    assert adopted.removed == []


def test_a_removed_project_is_forgotten_on_reload_only(workspace: Workspace) -> None:
    workspace.project("nightly", GOOD, {"t.sh": ":\n"})
    catalog = Catalog()
    catalog.adopt(load_workspace(workspace.root), first=True)
    (workspace.root / "projects" / "nightly" / "pit.toml").unlink()
    (workspace.root / "projects" / "nightly" / "t.sh").unlink()
    (workspace.root / "projects" / "nightly").rmdir()

    adopted = catalog.adopt(load_workspace(workspace.root), first=False)

    assert adopted.removed == ["nightly"]
    assert catalog.dag("nightly") is None
    assert len(catalog) == 0


def test_webhook_tokens_and_why_one_cannot_be_read(workspace: Workspace) -> None:
    hook = '[dag.webhook]\ntoken_secret = "{}"\n'
    for name, secret in (("a", "tok"), ("b", "missing")):
        toml = GOOD.replace("nightly", name).replace(
            "\n\n[[tasks]]", f"\n{hook.format(secret)}\n[[tasks]]"
        )
        workspace.project(name, toml, {"t.sh": ":\n"})
    catalog = Catalog()
    catalog.adopt(load_workspace(workspace.root), first=True)
    secrets, _ = parse_secrets('[global]\ntok = "s3cret-token"\n', "secrets.toml")

    tokens, why = catalog.webhook_tokens(secrets)
    without, why_without = catalog.webhook_tokens(None)

    assert tokens == {"a": "s3cret-token", "b": None}
    assert len(why) == 1
    assert "missing" in why[0]
    assert without == {"a": None, "b": None}
    assert all("no secrets file" in line for line in why_without)
