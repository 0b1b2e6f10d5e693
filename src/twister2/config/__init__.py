"""Layered configuration: packaged defaults, user and cluster files, environment, code.

Every key is described in the packaged ``schema.yaml`` (type, default, one-line doc);
``docs/configuration.md`` lists them. Layers, lowest first: defaults, the user file
(``$TWISTER2_CONFIG``, else ``$TWISTER2_CONFIG_DIR/config.yaml``), the cluster file
(``$TWISTER2_CONFIG_DIR/<cluster>.yaml``), ``TWISTER2_SECTION__KEY`` environment variables,
:func:`set`, and the overrides given to :func:`resolve`.

Example
-------
>>> from twister2 import config
>>> cfg = config.resolve(overrides={"master.failure_timeout": 5})
>>> cfg["master.failure_timeout"]
5.0
>>> config.parse_assignment("network.channel=tcp")
('network.channel', 'tcp')
>>> config.default("master.heartbeat_interval")
1.0
"""

from __future__ import annotations

from ._config import Config, parse_assignment, resolve, set
from ._schema import ConfigError, KeySpec, default, lookup, schema

__all__ = [
    "Config",
    "ConfigError",
    "KeySpec",
    "default",
    "lookup",
    "parse_assignment",
    "resolve",
    "schema",
    "set",
]
