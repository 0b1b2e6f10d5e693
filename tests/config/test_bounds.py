"""Numeric bounds of config keys (NaN and infinity refused) and the one default per key."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from twister2 import config
from twister2.config import Config, ConfigError, resolve, schema
from twister2.config._config import OVERRIDES_SOURCE
from twister2.config._schema import load_schema

NUMERIC = [key for key, spec in schema().items() if spec.type in ("int", "float")]


def test_every_numeric_key_has_bounds() -> None:
    unbounded = [k for k in NUMERIC if schema()[k].bounds() == ""]
    assert unbounded == []
    assert len(NUMERIC) > 30


def test_every_default_is_within_its_bounds() -> None:
    for key in NUMERIC:
        spec = schema()[key]
        assert spec.validate(spec.default, source="test") == spec.default


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [  # the values the reliability probe found spinning or hanging, and their neighbours
        ("net.send_buffer_records", 0, "an int >= 1"),
        ("master.heartbeat_interval", 0, "a float > 0"),
        ("master.heartbeat_interval", -1, "a float > 0"),
        ("master.failure_timeout", -0.5, "a float > 0"),
        ("master.port", 99999, "an int in [0, 65535]"),
        ("master.port", -1, "an int in [0, 65535]"),
        ("stream.window_batches", 0, "an int >= 1"),
        ("master.kill_grace", -1.0, "a float >= 0"),
        ("network.recv_timeout", 0, "a float > 0 or null"),
        ("job.timeout", 0, "a float > 0 or null"),
    ],
)
def test_out_of_range_names_key_value_range_and_source(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(overrides={key: value})
    assert str(info.value) == (
        f"config key {key!r} (from {OVERRIDES_SOURCE}) must be {expected}, got {value!r}"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "key", ["master.failure_timeout", "master.heartbeat_interval", "stream.linger_ms"]
)
def test_nan_and_infinity_are_refused(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=re.escape("(not a finite number)")) as info:
        Config.from_dict({key: value})
    assert key in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("text", "shown"), [("nan", "nan"), (".nan", "nan"), (".inf", "inf"), ("1e400", "inf")]
)
def test_nan_from_the_command_line_is_refused(text: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse_assignment(f"master.failure_timeout={text}")
    assert str(info.value) == (
        f"config key 'master.failure_timeout' (from --config master.failure_timeout={text}) "
        f"must be a float > 0, got {shown} (not a finite number)"
    )


def test_out_of_range_in_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWISTER2_MASTER__HEARTBEAT_INTERVAL", "0")
    with pytest.raises(ConfigError) as info:
        resolve()
    assert str(info.value) == (
        "config key 'master.heartbeat_interval' (from environment variable "
        "TWISTER2_MASTER__HEARTBEAT_INTERVAL) must be a float > 0, got 0"
    )


def test_out_of_range_in_a_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("net:\n  send_buffer_records: 0\n", encoding="utf-8")
    monkeypatch.setenv("TWISTER2_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        resolve()
    assert str(info.value) == (
        f"config key 'net.send_buffer_records' (from file {path}) must be an int >= 1, got 0"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("master.port", 0),
        ("master.port", 65535),
        ("master.kill_grace", 0),
        ("net.send_buffer_records", 1),
        ("master.failure_timeout", 1e-3),
        ("job.timeout", None),
        ("job.timeout", 0.5),
    ],
)
def test_values_on_the_edge_are_accepted(key: str, value: Any) -> None:
    assert resolve(overrides={key: value})[key] == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: {b: {type: str, default: x, doc: d, min: 1}}", "only an int or float key has bounds"),
        ("a: {b: {type: int, default: 1, doc: d, min: one}}", "min must be a number"),
        ("a: {b: {type: int, default: 0, doc: d, min: 1}}", "must be an int >= 1, got 0"),
        ("a: {b: {type: float, default: 2, doc: d, above: 0, max: 1}}", "> 0 and <= 1, got 2"),
    ],
)
def test_a_broken_bound_in_the_schema_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_schema(text, where="the-schema.yaml")


def test_default_is_the_schema_default_for_every_key() -> None:
    for key, spec in schema().items():
        expected = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert config.default(key) == expected
    assert config.default("net.send_buffer_records") == 65536
    assert config.default("resource.nomad.datacenters") == ["*"]


def test_default_of_an_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=re.escape("did you mean net.tree_degree?")):
        config.default("net.tree_degre")
    with pytest.raises(ConfigError, match="is a section, not a key"):
        config.default("net.spill")
