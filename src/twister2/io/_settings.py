"""The configuration the io functions read: a resolved Config, a plain mapping, or none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twister2 import config as config_mod
from twister2.config import Config

ConfigLike = Mapping[str, Any] | None
"""What io functions take as ``config``: a resolved :class:`Config` (a job's ``env.config``),
a dict of keys that override this process's configuration, or None (this process's)."""


def resolved(config: ConfigLike) -> Config:
    """``config`` as a validated :class:`Config`.

    A :class:`Config` is used as it is; a plain mapping overrides the keys it names on top of
    this process's resolved configuration (files, environment, ``config.set``).
    """
    if isinstance(config, Config):
        return config
    return config_mod.resolve(overrides=config)
