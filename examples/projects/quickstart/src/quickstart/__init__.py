"""Code shared by the quickstart's Python tasks."""

ORDERS = [
    ("o-1", "c-1", 120.0),
    ("o-2", "c-2", 75.5),
    ("o-3", "c-1", 42.0),
]
