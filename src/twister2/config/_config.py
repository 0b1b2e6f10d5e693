"""Layered configuration: the resolved :class:`Config` and the layers that build it.

From lowest to highest precedence:

1. the defaults in the packaged ``schema.yaml``;
2. the user file: ``$TWISTER2_CONFIG`` if set, else ``$TWISTER2_CONFIG_DIR/config.yaml``
   (``TWISTER2_CONFIG_DIR`` defaults to ``~/.config/twister2``);
3. the cluster file ``$TWISTER2_CONFIG_DIR/<cluster>.yaml``;
4. environment variables ``TWISTER2_SECTION__KEY=value`` (``__`` is a dot);
5. :func:`set`, process-wide or as a context manager;
6. the overrides passed to :func:`resolve`.

Example
-------
>>> with set({"network.channel": "tcp"}):
...     cfg = resolve(overrides={"master.port": 7000})
>>> cfg["network.channel"], cfg["master.port"]
('tcp', 7000)
>>> cfg.sources()["master.port"]
'explicit overrides (twister2.run(config=...) or --config)'
"""

from __future__ import annotations

import builtins
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from ._schema import ConfigError, _packaged_schema

__all__ = ["Config", "parse_assignment", "resolve", "set"]

ENV_PREFIX = "TWISTER2_"
"""Environment variables that start with this (and hold ``__``) are config keys."""

_NOT_CONFIG_ENV = frozenset({"TWISTER2_CONFIG", "TWISTER2_CONFIG_DIR"})
# Runtime plumbing between launcher, master and workers: one underscore after the section name,
# so TWISTER2_JOB_ID is plumbing while TWISTER2_JOB__LOG_DIR is the key job.log_dir.
_PLUMBING_ENV = re.compile(r"TWISTER2_(?:(?:JOB|WORKER|SUBMIT)_(?!_)|MASTER_ADDRESS)")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

SET_SOURCE = "config.set"
OVERRIDES_SOURCE = "explicit overrides (twister2.run(config=...) or --config)"

_Item = tuple[str, Any, str]
"""One validated value: (dotted key, normalised value, where it came from)."""


class Config(Mapping[str, Any]):
    """The resolved configuration: an immutable, validated mapping from every dotted key.

    Every key of the schema is present. Path values come back with ``~`` expanded (each host
    expands its own home: :meth:`to_dict` keeps the ``~``); ``list[str]`` values come back as a
    new list on each read.

    Build one with :func:`resolve`, or with :meth:`from_dict` from what another process resolved.

    Examples
    --------
    >>> cfg = Config.from_dict({"network.channel": "tcp", "master.failure_timeout": 5})
    >>> cfg["network.channel"], cfg["master.failure_timeout"], cfg["master.port"]
    ('tcp', 5.0, 0)
    >>> cfg.with_overrides({"network.channel": "mpi"}).get("network.channel")
    'mpi'
    >>> Config.from_dict(cfg.to_dict()) == cfg
    True
    """

    __slots__ = ("_sources", "_values")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        items = _mapping_items(values or {}, source="Config(...)")
        self._values, self._sources = _build(items)

    @classmethod
    def _create(cls, values: dict[str, Any], sources: dict[str, str]) -> Config:
        cfg = cls.__new__(cls)
        cfg._values, cfg._sources = values, sources
        return cfg

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """Validate ``values`` (flat dotted keys, or nested sections) into a :class:`Config`.

        Keys that are missing take their defaults. This is how a worker rebuilds the config
        its client resolved, from :meth:`to_dict`.

        Examples
        --------
        >>> Config.from_dict({"resource": {"memory_mb": 1024}})["resource.memory_mb"]
        1024
        >>> Config.from_dict({"master.port": "7000"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        twister2.config.ConfigError: config key 'master.port' ... got '7000' (str)
        """
        return cls._create(*_build(_mapping_items(values, source="Config.from_dict")))

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._values[key]
        except KeyError:
            msg = f"no config key {key!r}; {_packaged_schema().suggest(key)}"
            raise KeyError(msg) from None
        if isinstance(value, tuple):
            return list(value)
        if value is not None and _packaged_schema()[key].type == "path":
            return os.path.expanduser(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != _packaged_schema()[k].default}
        shown = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        rest = len(self._values) - len(changed)
        return f"Config({shown}{', ' if shown else ''}{rest} defaults)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Config._create, (self._values, self._sources))

    def to_dict(self) -> dict[str, Any]:
        """Return every key and value as a flat, JSON-serialisable dict.

        Paths keep ``~`` unexpanded, so the process that reads the dict expands its own home.

        Examples
        --------
        >>> import json
        >>> d = Config.from_dict({"resource.mpi.extra_args": ["-x", "FOO"]}).to_dict()
        >>> json.loads(json.dumps(d))["resource.mpi.extra_args"]
        ['-x', 'FOO']
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._values.items()}

    def with_overrides(
        self, overrides: Mapping[str, Any], *, source: str = "Config.with_overrides"
    ) -> Config:
        """Return a copy with ``overrides`` (validated) on top; ``source`` names them in errors.

        Examples
        --------
        >>> cfg = Config.from_dict({})
        >>> cfg.with_overrides({"master.port": 7000})["master.port"]
        7000
        """
        values, sources = dict(self._values), dict(self._sources)
        for key, value, where in _mapping_items(overrides, source):
            values[key], sources[key] = value, where
        return Config._create(values, sources)

    def sources(self) -> dict[str, str]:
        """Say where each value that is not the schema default was set (last layer wins).

        Examples
        --------
        >>> Config.from_dict({"master.port": 7000}).sources()
        {'master.port': 'Config.from_dict'}
        """
        return dict(self._sources)


def _build(items: Iterable[_Item]) -> tuple[dict[str, Any], dict[str, str]]:
    values = {key: spec.default for key, spec in _packaged_schema().items()}
    sources: dict[str, str] = {}
    for key, value, source in items:
        values[key], sources[key] = value, source
    return values, sources


def _mapping_items(mapping: Mapping[Any, Any], source: str) -> list[_Item]:
    if not isinstance(mapping, Mapping):
        msg = f"config values (from {source}) must be a mapping of keys to values, got {mapping!r}"
        raise ConfigError(msg)
    valid = _packaged_schema().validate_mapping(mapping, source)
    return [(key, value, source) for key, value in valid.items()]


# ---------------------------------------------------------------------------------- files


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``$TWISTER2_CONFIG_DIR``, by default ``~/.config/twister2``."""
    env = os.environ if environ is None else environ
    return Path(env.get("TWISTER2_CONFIG_DIR") or "~/.config/twister2").expanduser()


def _user_file(environ: Mapping[str, str]) -> Path | None:
    named = environ.get("TWISTER2_CONFIG")
    if named:
        path = Path(named).expanduser()
        if path.is_dir():
            msg = (
                f"TWISTER2_CONFIG names {path}, which is a directory; name the config file "
                f"itself (such as {path / 'config.yaml'}), or unset TWISTER2_CONFIG"
            )
            raise ConfigError(msg)
        if not path.is_file():
            msg = (
                f"TWISTER2_CONFIG names the config file {path}, which does not exist; "
                "create it, or unset TWISTER2_CONFIG"
            )
            raise ConfigError(msg)
        return path
    path = config_dir(environ) / "config.yaml"
    return path if path.is_file() else None


def _cluster_file(cluster: str, environ: Mapping[str, str]) -> Path | None:
    if not _CLUSTER_NAME.fullmatch(cluster):
        msg = f"cluster name {cluster!r} must be a plain name such as 'local', 'mpi' or 'slurm'"
        raise ConfigError(msg)
    path = config_dir(environ) / f"{cluster}.yaml"
    return path if path.is_file() else None


def _file_items(path: Path) -> list[_Item]:
    source = f"file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the config file {path}: {exc}"
        raise ConfigError(msg) from exc
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"the config file {path} is not valid YAML; fix it or move it away:\n{exc}"
        raise ConfigError(msg) from exc
    if tree is None:
        return []
    if not isinstance(tree, Mapping):
        msg = (
            f"the config file {path} must hold a mapping of keys to values "
            f"(such as 'network: {{channel: tcp}}'), got a {type(tree).__name__}"
        )
        raise ConfigError(msg)
    return _mapping_items(tree, source)


# ---------------------------------------------------------------------------- environment


def env_key(name: str) -> str | None:
    """Return the config key an environment variable sets, or None if it sets none.

    Examples
    --------
    >>> env_key("TWISTER2_RESOURCE__MPI__HOSTFILE")
    'resource.mpi.hostfile'
    >>> env_key("TWISTER2_JOB_ID") is None, env_key("TWISTER2_JOB__LOG_DIR")
    (True, 'job.log_dir')
    """
    if not name.startswith(ENV_PREFIX) or name in _NOT_CONFIG_ENV or _PLUMBING_ENV.match(name):
        return None
    rest = name.removeprefix(ENV_PREFIX)
    if "__" not in rest:
        return None
    return rest.lower().replace("__", ".")


def _env_items(environ: Mapping[str, str]) -> list[_Item]:
    schema = _packaged_schema()
    items: list[_Item] = []
    for name in sorted(environ):
        key = env_key(name)
        if key is None:
            continue
        source = f"environment variable {name}"
        items.append((key, schema.lookup(key, source).parse(environ[name], source), source))
    return items


# ---------------------------------------------------------------------------- config.set

_lock = threading.Lock()


class _SetEntry:
    """The values of one :func:`set` call: key -> (value, source)."""

    __slots__ = ("permanent", "values")

    def __init__(self, values: dict[str, tuple[Any, str]]) -> None:
        self.values = values
        self.permanent = False

    def settle(self) -> None:
        """Mark the values as here to stay: their :func:`set` object is gone, never exited."""
        self.permanent = True


_set_layer: list[_SetEntry] = []
"""The process-wide layer of :func:`set`, oldest call first; a newer call wins."""


def _compact_set_layer() -> None:
    """Forget values that a newer permanent entry hides for good (call with the lock held)."""
    hidden: builtins.set[str] = builtins.set()
    kept: list[_SetEntry] = []
    for entry in reversed(_set_layer):
        if entry.permanent:
            for key in hidden.intersection(entry.values):
                del entry.values[key]
            hidden.update(entry.values)
            if not entry.values:
                continue
        kept.append(entry)
    _set_layer[:] = reversed(kept)


class _SetConfig:
    """Values :func:`set` applied; as a context manager it removes them again on exit.

    Each call is one entry in the layer, so contexts in several threads may exit in any order:
    on exit exactly this call's values go, and those of the other calls stay.
    """

    def __init__(self, items: list[_Item]) -> None:
        self._entry = _SetEntry({key: (value, source) for key, value, source in items})
        with _lock:
            _compact_set_layer()
            _set_layer.append(self._entry)
        weakref.finalize(self, self._entry.settle)

    def __enter__(self) -> _SetConfig:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _lock:
            _set_layer[:] = [entry for entry in _set_layer if entry is not self._entry]


def set(arg: Mapping[str, Any] | None = None, **kwargs: Any) -> _SetConfig:
    """Set configuration values for this process, above files and environment variables.

    A plain call changes the values for good (until set again); used as a context manager it
    takes its values back on exit, so the previous ones show again. Keyword names use ``__``
    for a dot. The layer is process-wide, not per thread; contexts in several threads may exit
    in any order.

    Parameters
    ----------
    arg : Mapping, optional
        Dotted keys (``{"network.channel": "tcp"}``) or nested sections to values.
    **kwargs
        More values, ``network__channel="tcp"``.

    Returns
    -------
    _SetConfig
        Already applied; use it in a ``with`` statement to undo it at the end of the block.

    Raises
    ------
    ConfigError
        For an unknown key or a value of the wrong type; nothing is applied then.

    Examples
    --------
    >>> with set(master__failure_timeout=20):
    ...     resolve()["master.failure_timeout"]
    20.0
    """
    items = _mapping_items(arg or {}, SET_SOURCE)
    items += _mapping_items({k.replace("__", "."): v for k, v in kwargs.items()}, SET_SOURCE)
    return _SetConfig(items)


# ------------------------------------------------------------------------------- resolving


def resolve(cluster: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the configuration from every layer, lowest first.

    Defaults, the user file, the cluster file, ``TWISTER2_SECTION__KEY`` environment variables,
    :func:`set`, then ``overrides``; a higher layer wins.

    Parameters
    ----------
    cluster : str, optional
        The cluster the job runs on (``local``, ``mpi``, ``slurm``, ...); its file
        ``$TWISTER2_CONFIG_DIR/<cluster>.yaml`` is read if it exists.
    overrides : Mapping, optional
        The highest layer: values from ``twister2.run(config=...)`` or ``--config key=value``.

    Raises
    ------
    ConfigError
        For an unknown key, a wrong value or a malformed file; the message names its source.

    Examples
    --------
    >>> resolve("local", overrides={"network.channel": "tcp"})["network.channel"]
    'tcp'
    """
    environ = dict(os.environ)
    items: list[_Item] = []
    user_file = _user_file(environ)
    if user_file is not None:
        items += _file_items(user_file)
    cluster_file = _cluster_file(cluster, environ) if cluster else None
    if cluster_file is not None:
        items += _file_items(cluster_file)
    items += _env_items(environ)
    with _lock:
        for entry in _set_layer:
            items += [(key, value, source) for key, (value, source) in entry.values.items()]
    if overrides:
        items += _mapping_items(overrides, OVERRIDES_SOURCE)
    return Config._create(*_build(items))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line ``key=value`` into a checked key and a parsed, validated value.

    The value is read as YAML, so ``5`` is an int and ``[a, b]`` a list.

    Examples
    --------
    >>> parse_assignment("master.failure_timeout=5")
    ('master.failure_timeout', 5.0)
    >>> parse_assignment("resource.mpi.extra_args=[--bind-to, core]")
    ('resource.mpi.extra_args', ['--bind-to', 'core'])
    >>> parse_assignment("network.channel")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twister2.config.ConfigError: --config takes key=value (such as ...), got 'network.channel'
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        msg = f"--config takes key=value (such as network.channel=tcp), got {text!r}"
        raise ConfigError(msg)
    source = f"--config {text}"
    value = _packaged_schema().lookup(key, source).parse(raw.strip(), source)
    return key, list(value) if isinstance(value, tuple) else value
