"""`dump_secrets`: what `pit secrets` writes reads back as the same secrets, whatever they hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pit.spec.secrets import Secrets, dump_secrets, parse_secrets

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
SECRET = st.one_of(
    TEXT, st.dictionaries(NAMES.filter(lambda n: n != "sensitive"), TEXT, max_size=4)
)


@given(st.dictionaries(NAMES, st.dictionaries(NAMES, SECRET, max_size=4), max_size=4))
def test_dumped_secrets_read_back_the_same(sections: dict[str, dict[str, object]]) -> None:
    secrets = Secrets(sections=sections)  # type: ignore[arg-type]
    again, problems = parse_secrets(dump_secrets(secrets), "secrets.toml")
    assert problems == []
    assert again.sections == {name: dict(entries) for name, entries in sections.items()}


def test_the_fields_marked_sensitive_are_kept() -> None:
    text = '[global.db]\nhost = "h"\nuser = "u"\nsensitive = ["host", "user"]\n'
    secrets, _ = parse_secrets(text, "s.toml")
    again, problems = parse_secrets(dump_secrets(secrets), "s.toml")
    assert problems == []
    assert again.marked == {("global", "db"): frozenset({"host", "user"})}
