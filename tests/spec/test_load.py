"""`load_workspace` and `load_secrets`: the one thin I/O wrapper, on a workspace in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pit.errors import WorkspaceError
from pit.spec.load import load_secrets, load_workspace
from pit.spec.workspace import WorkspaceConfig

from .tomltext import dag, pit_toml, task


def make_project(root: Path, folder: str, text: str, scripts: tuple[str, ...] = ()) -> Path:
    project = root / "projects" / folder
    project.mkdir(parents=True)
    (project / "pit.toml").write_text(text, encoding="utf-8")
    for script in scripts:
        (project / script).parent.mkdir(parents=True, exist_ok=True)
        (project / script).write_text("", encoding="utf-8")
    return project


def test_loads_every_project_in_folder_order(tmp_path: Path) -> None:
    make_project(tmp_path, "sales", pit_toml(dag("sales"), task("a")), ("tasks/a.py",))
    make_project(tmp_path, "claims", pit_toml(dag("claims_pipeline"), task("b")), ("tasks/b.py",))

    workspace = load_workspace(tmp_path)

    assert workspace.problems == []
    assert [p.folder for p in workspace.projects] == ["claims", "sales"]
    claims = workspace.projects[0]
    assert claims.file == "projects/claims/pit.toml"
    assert claims.path == tmp_path / "projects" / "claims"
    assert claims.dag is not None
    assert claims.dag.name == "claims_pipeline"
    assert workspace.config == WorkspaceConfig()


def test_folders_without_pit_toml_and_hidden_folders_are_skipped(tmp_path: Path) -> None:
    make_project(tmp_path, "real", pit_toml(dag("real"), task("a")), ("tasks/a.py",))
    make_project(tmp_path, ".hidden", pit_toml(dag("hidden"), task("a")))
    (tmp_path / "projects" / "notes").mkdir()
    (tmp_path / "projects" / "README.md").write_text("hi", encoding="utf-8")

    workspace = load_workspace(tmp_path)

    assert [p.folder for p in workspace.projects] == ["real"]


def test_missing_scripts_are_checked_against_the_project_folder(tmp_path: Path) -> None:
    make_project(
        tmp_path, "etl", pit_toml(dag("etl"), task("a"), task("b", script="b.sh")), ("tasks/a.py",)
    )

    (problem,) = load_workspace(tmp_path).problems

    assert (problem.file, problem.key) == ("projects/etl/pit.toml", "tasks[1].script")
    assert problem.message == "script 'b.sh' does not exist"


def test_git_backed_project_needs_no_scripts_on_disk(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        "etl",
        pit_toml(dag("etl", git_url="https://g.example/u", git_ref="main"), task("a")),
    )

    assert load_workspace(tmp_path).problems == []


def test_duplicate_dag_names_across_projects(tmp_path: Path) -> None:
    for folder in ("a_first", "b_second", "c_third"):
        make_project(tmp_path, folder, pit_toml(dag("etl"), task("t")), ("tasks/t.py",))

    workspace = load_workspace(tmp_path)

    assert [(p.file, p.key, p.message) for p in workspace.problems] == [
        (
            "projects/b_second/pit.toml",
            "dag.name",
            "DAG name 'etl' is already used by projects/a_first/pit.toml",
        ),
        (
            "projects/c_third/pit.toml",
            "dag.name",
            "DAG name 'etl' is already used by projects/a_first/pit.toml",
        ),
    ]
    assert workspace.projects[1].problems == (workspace.problems[0],)


def test_problems_of_every_project_and_the_config_together(tmp_path: Path) -> None:
    (tmp_path / "pit_config.toml").write_text('runs_dri = "runs"\n', encoding="utf-8")
    make_project(tmp_path, "broken", "[dag\n")
    make_project(
        tmp_path, "cyclic", pit_toml(dag("c"), task("a", depends_on=["a"])), ("tasks/a.py",)
    )
    make_project(tmp_path, "nameless", pit_toml(dag(None), task("a")))

    workspace = load_workspace(tmp_path, strict=True)

    assert [(p.file, p.key) for p in workspace.problems] == [
        ("pit_config.toml", "runs_dri"),
        ("projects/broken/pit.toml", ""),
        ("projects/cyclic/pit.toml", "tasks[0].depends_on"),
        ("projects/nameless/pit.toml", "dag.name"),
        ("projects/nameless/pit.toml", "tasks[0].script"),  # the same pass: no second round
    ]
    assert "not valid TOML" in workspace.problems[1].message
    assert [p.dag is None for p in workspace.projects] == [True, False, True]


def test_workspace_config_is_read(tmp_path: Path) -> None:
    (tmp_path / "pit_config.toml").write_text(
        'runs_dir = "var/runs"\nkeep_artifacts = ["logs"]\nsecrets_dir = "/etc/pit/s.toml"\n',
        encoding="utf-8",
    )
    (tmp_path / "projects").mkdir()

    workspace = load_workspace(tmp_path)

    assert workspace.config.runs_dir == "var/runs"
    assert workspace.config.keep_artifacts == ("logs",)
    assert workspace.resolve(workspace.config.runs_dir) == tmp_path / "var" / "runs"
    assert workspace.config.secrets_path is not None
    assert workspace.resolve(workspace.config.secrets_path) == Path("/etc/pit/s.toml")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        load_workspace(tmp_path / "nowhere")


def test_missing_projects_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"no projects/ folder .*pit init"):
        load_workspace(tmp_path)


def test_unreadable_pit_toml_is_a_problem_of_its_project(tmp_path: Path) -> None:
    make_project(tmp_path, "a_good", pit_toml(dag("good"), task("a")), ("tasks/a.py",))
    binary = make_project(tmp_path, "b_binary", "")
    (binary / "pit.toml").write_bytes(b"\xff\xfe[dag]\n")
    make_project(tmp_path, "c_bad", pit_toml(dag("bad", overlap="x"), task("a")), ("tasks/a.py",))

    workspace = load_workspace(tmp_path)

    assert [(p.file, p.key) for p in workspace.problems] == [
        ("projects/b_binary/pit.toml", ""),
        ("projects/c_bad/pit.toml", "dag.overlap"),
    ]
    unreadable = workspace.problems[0]
    assert unreadable.message == "not UTF-8 text (byte 0xff at offset 0)"
    assert "UTF-8" in unreadable.fix
    assert workspace.projects[1].dag is None
    assert workspace.projects[0].dag is not None


def test_find_a_dag_by_name(tmp_path: Path) -> None:
    make_project(tmp_path, "folder", pit_toml(dag("claims_pipeline"), task("a")), ("tasks/a.py",))

    project = load_workspace(tmp_path).find("claims_pipeline")

    assert project.folder == "folder"


def test_find_an_unknown_dag_suggests_a_name(tmp_path: Path) -> None:
    make_project(tmp_path, "claims", pit_toml(dag("claims_pipeline"), task("a")), ("tasks/a.py",))
    workspace = load_workspace(tmp_path)

    with pytest.raises(
        WorkspaceError, match=r"no DAG named 'claims_pipline'.*did you mean 'claims_pipeline'"
    ):
        workspace.find("claims_pipline")
    with pytest.raises(WorkspaceError, match=r"no DAG named 'zzz'.*DAGs here: claims_pipeline"):
        workspace.find("zzz")


def test_find_a_broken_dag_by_its_folder_points_at_validate(tmp_path: Path) -> None:
    make_project(tmp_path, "etl", pit_toml(dag(None), task("a")))

    with pytest.raises(WorkspaceError, match=r"DAG 'etl' has configuration errors.*pit validate"):
        load_workspace(tmp_path).find("etl")


def test_load_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('[global]\ntoken = "t"\n', encoding="utf-8")

    assert load_secrets(path).resolve("p", "token") == "t"


def test_load_secrets_with_problems_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('token = "t"\n[global]\nlist = [1]\n', encoding="utf-8")

    with pytest.raises(WorkspaceError) as info:
        load_secrets(path)

    assert str(info.value).splitlines() == [
        f"{path}: token: expected a section table (put it under [global] or a [<project>] section)",
        f"{path}: global.list: a secret is a string or a table of strings",
    ]


def test_load_missing_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"secrets file .* does not exist"):
        load_secrets(tmp_path / "nope.toml")
