"""Fixtures shared by the HTTP door's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import playground as pg

import http_services as S


@pytest.fixture
def rt() -> Iterator[pg.Runtime]:
    """An embedded runtime with the HTTP test services (virtual clock), closed after the test."""
    runtime = pg.Runtime(*S.ALL)
    yield runtime
    runtime.close()
