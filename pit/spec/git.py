"""What a git-backed DAG's `git_url` and `git_ref` may be, judged without running git."""

from __future__ import annotations

import re

_SCHEMES = re.compile(r"(https?|ssh|git|git\+ssh|ssh\+git|file)://\S+")
_SCP_LIKE = re.compile(r"([\w.+-]+@)?[\w.-]+:(?!//)\S+")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def git_url_problem(url: str) -> str | None:
    """Why git could not fetch `url`; None for a form it can (https, ssh, git, file, or
    `user@host:path`). Remote helpers (`ext::`, `fd::`) are refused: they run commands."""
    if "::" in url.split("/", 1)[0]:
        return (
            f"'{url}' asks for a git remote helper; pit fetches only over https, ssh, git or file"
        )
    if _SCHEMES.fullmatch(url) or _SCP_LIKE.fullmatch(url):
        return None
    return f"'{url}' is not a URL git can fetch"


def git_ref_problem(ref: str) -> str | None:
    """Why `ref` cannot name a branch, tag or commit (git check-ref-format's rules); None if
    it can."""
    if not ref:
        return "is empty"
    if _REF_FORBIDDEN.search(ref):
        return f"'{ref}' has a space, a control character or one of ~ ^ : ? * [ \\"
    if ".." in ref or "@{" in ref or "//" in ref or ref == "@":
        return f"'{ref}' has '..', '@{{' or '//', which git refuses in a ref"
    if ref.startswith(("-", "/")) or ref.endswith(("/", ".", ".lock")):
        return f"'{ref}' starts with '-' or '/', or ends with '/', '.' or '.lock'"
    if any(part.startswith(".") for part in ref.split("/")):
        return f"'{ref}' has a part starting with '.'"
    return None
