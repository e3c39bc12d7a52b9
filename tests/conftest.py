"""Fixtures every test package may use: the run's settings and a running stack."""

from __future__ import annotations

import pytest

from gozon.config import Settings
from tests.settings import TEST_SETTINGS
from tests.support import Stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return TEST_SETTINGS


@pytest.fixture
def running(stack: Stack) -> Stack:
    """The stack with every process up (a fault test may have stopped one)."""
    stack.start()
    return stack
