"""Fixtures of the change-capture tests: `pytest_plugins = ["support.capture_fixtures"]`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.capture import drop_slot, slot_name


@pytest.fixture
def slot(db_url: str) -> Iterator[str]:
    """A slot name of this test's own, its slot and publication dropped after it."""
    name = slot_name()
    yield name
    drop_slot(db_url, name)
