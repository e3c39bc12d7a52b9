"""Settings: each field read from its `GOZON_` variable, malformed values refused with
the variable's name, and the README's table listing exactly the settings there are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gozon.config import ENVIRONMENT, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_field_is_read_from_its_variable() -> None:
    assert ENVIRONMENT["orders_db"] == "GOZON_ORDERS_DB"
    assert set(ENVIRONMENT) == set(Settings.__struct_fields__)
    assert all(var == "GOZON_" + field.upper() for field, var in ENVIRONMENT.items())


def test_values_are_converted_from_text_and_the_rest_keep_their_defaults() -> None:
    settings = Settings.from_env({"GOZON_GATEWAY_PORT": "9000", "GOZON_PROXY_TIMEOUT": "2.5",
                                  "GOZON_LOG_FORMAT": "json", "OTHER": "ignored"})
    assert (settings.gateway_port, settings.proxy_timeout, settings.log_format) == (9000, 2.5, "json")
    assert settings.orders_port == Settings().orders_port


def test_a_malformed_value_stops_with_the_variable_named() -> None:
    with pytest.raises(SystemExit, match="bad setting: Expected `int`, got `str` - at GOZON_DB_POOL_SIZE"):
        Settings.from_env({"GOZON_DB_POOL_SIZE": "ten"})


def test_the_readme_lists_every_setting_and_no_other() -> None:
    section = README.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `GOZON_")]
    listed = {var for row in rows for var in re.findall(r"`(GOZON_[A-Z0-9_]+)`", row.split(" | ")[0])}
    assert listed == set(ENVIRONMENT.values()), (
        f"missing from the README: {sorted(set(ENVIRONMENT.values()) - listed)};"
        f" listed but not a setting: {sorted(listed - set(ENVIRONMENT.values()))}")
