"""Test files live in folders without ``__init__.py``, so pytest imports each under its bare file
name: two files with the same name in different folders stop the whole collection."""

from collections import Counter
from pathlib import Path


def test_every_test_file_name_is_unique():
    names = Counter(p.name for p in Path(__file__).parent.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
