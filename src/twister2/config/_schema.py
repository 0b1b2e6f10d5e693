"""The configuration schema: every key with its type, default and doc, and value validation.

The schema lives in the packaged ``schema.yaml``; this module reads it into :class:`KeySpec`
objects and checks the values every other layer brings. Adding a key means editing
``schema.yaml`` only.

Example
-------
>>> spec = schema()["master.port"]
>>> spec.type, spec.default
('int', 0)
>>> spec.validate(True, source="the command line")
Traceback (most recent call last):
...
twister2.config.ConfigError: config key 'master.port' (from the command line) must be an int in ...
>>> spec.validate(99999, source="the command line")
Traceback (most recent call last):
...
twister2.config.ConfigError: config key 'master.port' (...) must be an int in [0, 65535], got 99999
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = ["ConfigError", "KeySpec", "Schema", "default", "load_schema", "schema"]


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message says which, where from, and the fix."""


ConfigError.__module__ = "twister2.config"  # its public home, shown in tracebacks


class _Invalid:
    """Marks a value that does not fit a type."""


_INVALID = _Invalid()


def _as_int(value: object) -> object:
    return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID


def _as_float(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _INVALID


def _as_str(value: object) -> object:
    return value if isinstance(value, str) else _INVALID


def _as_bool(value: object) -> object:
    return value if isinstance(value, bool) else _INVALID


def _as_path(value: object) -> object:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return value if isinstance(value, str) else _INVALID


def _as_str_list(value: object) -> object:
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return _INVALID


_NORMALISERS: dict[str, Callable[[object], object]] = {
    "int": _as_int,
    "float": _as_float,
    "str": _as_str,
    "bool": _as_bool,
    "path": _as_path,
    "list[str]": _as_str_list,
}
_TYPE_NAMES = {
    "int": "an int",
    "float": "a float",
    "str": "a str",
    "bool": "a bool (true or false)",
    "path": "a path (a str)",
    "list[str]": "a list of str",
}
TYPES = (*_NORMALISERS, "choice")
"""The value types a key may declare in ``schema.yaml``."""


@dataclass(frozen=True)
class KeySpec:
    """One configuration key as ``schema.yaml`` describes it.

    Attributes
    ----------
    key : str
        The flat dotted name, e.g. ``"network.channel"``.
    type : str
        One of ``int``, ``float``, ``str``, ``bool``, ``path``, ``list[str]``, ``choice``.
    default : Any
        The default, normalised as values are (floats as ``float``, lists as tuples, paths with
        ``~`` not yet expanded).
    doc : str
        A one-line description.
    choices : tuple or None
        The allowed values of a ``choice`` key, else None.
    nullable : bool
        Whether null (None) is allowed.
    minimum, maximum : float or None
        Inclusive bounds of an ``int`` or ``float`` key (None = unbounded on that side).
    above : float or None
        Exclusive lower bound (the value must be greater), e.g. ``0`` for a positive timeout.

    Examples
    --------
    >>> spec = schema()["network.channel"]
    >>> spec.choices
    ('auto', 'tcp', 'mpi')
    >>> spec.validate("tcp", source="an example")
    'tcp'
    """

    key: str
    type: str
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None

    def bounds(self) -> str:
        """The allowed range of a numeric key in words: ``"in [0, 65535]"``, ``"> 0"``, ``""``.

        >>> schema()["master.port"].bounds(), schema()["master.failure_timeout"].bounds()
        ('in [0, 65535]', '> 0')
        """
        low = self.minimum
        if self.above is not None:
            low_text = f"> {_number(self.above)}"
            return (
                low_text if self.maximum is None else f"{low_text} and <= {_number(self.maximum)}"
            )
        if low is not None and self.maximum is not None:
            return f"in [{_number(low)}, {_number(self.maximum)}]"
        if low is not None:
            return f">= {_number(low)}"
        if self.maximum is not None:
            return f"<= {_number(self.maximum)}"
        return ""

    def describe(self) -> str:
        """Say in words what values the key accepts, e.g. ``"a float > 0 or null"``."""
        if self.type == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices or ())
        else:
            text = _TYPE_NAMES[self.type]
            if self.bounds():
                text += " " + self.bounds()
        return f"{text} or null" if self.nullable else text

    def _in_bounds(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return True
        if not math.isfinite(value):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        if self.maximum is not None and value > self.maximum:
            return False
        return self.above is None or value > self.above

    def validate(self, value: object, source: str) -> Any:
        """Return ``value`` normalised for this key, or raise :class:`ConfigError`.

        Validation is strict: ``True`` is not an int and ``"5"`` is not an int. An int is
        accepted for a float (and becomes a float), a tuple for a list, an ``os.PathLike`` for a
        path. ``source`` says where the value came from, for the error message.
        """
        if value is None and self.nullable:
            return None
        if self.type == "choice":
            ok = any(value == c and type(value) is type(c) for c in self.choices or ())
            result: object = value if ok else _INVALID
        else:
            result = _NORMALISERS[self.type](value)
        if result is _INVALID:
            msg = (
                f"config key {self.key!r} (from {source}) must be {self.describe()}, "
                f"got {value!r} ({type(value).__name__})"
            )
            raise ConfigError(msg)
        if not self._in_bounds(result):
            finite = math.isfinite(result)  # type: ignore[arg-type]
            msg = (
                f"config key {self.key!r} (from {source}) must be {self.describe()}, "
                f"got {value!r}{'' if finite else ' (not a finite number)'}"
            )
            raise ConfigError(msg)
        return result

    def parse(self, text: str, source: str) -> Any:
        """Parse ``text`` from an environment variable or the command line, then validate it.

        The text is read as YAML (``5`` is an int, ``true`` a bool, ``[a, b]`` a list, ``null``
        None). For a ``str`` or ``path`` key text that YAML reads as another type stays the
        text (``1.0`` is the string ``"1.0"``); a float key also takes ``1e3``.

        Examples
        --------
        >>> schema()["master.port"].parse("5", source="an example")
        5
        >>> schema()["master.interface"].parse("10.0.0.1", source="an example")
        '10.0.0.1'
        """
        try:
            value: Any = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if self.type in ("str", "path") and not isinstance(value, str):
            if not (value is None and self.nullable):
                value = text
        elif self.type == "choice" and value not in (self.choices or ()):
            value = text
        elif self.type == "float" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        return self.validate(value, source)


class Schema(Mapping[str, KeySpec]):
    """All keys by dotted name, with the lookups that give helpful errors."""

    def __init__(self, specs: Mapping[str, KeySpec]) -> None:
        self._specs = dict(specs)
        sections: dict[str, list[str]] = {}
        for key in self._specs:
            parts = key.split(".")
            for end in range(1, len(parts)):
                sections.setdefault(".".join(parts[:end]), []).append(key)
        self._sections = sections

    def __getitem__(self, key: str) -> KeySpec:
        return self._specs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def is_section(self, name: str) -> bool:
        """Whether ``name`` is a section (a prefix of keys), such as ``resource.mpi``."""
        return name in self._sections

    def lookup(self, key: str, source: str) -> KeySpec:
        """Return the spec of ``key``; for an unknown key raise a :class:`ConfigError`."""
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        if key in self._sections:
            keys = ", ".join(self._sections[key])
            msg = (
                f"config key {key!r} (from {source}) is a section, not a key; "
                f"set one of its keys instead: {keys}"
            )
            raise ConfigError(msg)
        msg = f"unknown config key {key!r} (from {source}); {self.suggest(key)}"
        raise ConfigError(msg)

    def suggest(self, key: str) -> str:
        """Say which known keys ``key`` was probably meant to be."""
        lowered = key.lower()
        scores = {k: difflib.SequenceMatcher(None, lowered, k).ratio() for k in self._specs}
        best = max(scores.values(), default=0.0)
        ranked = sorted(self._specs, key=scores.__getitem__, reverse=True)
        close = [k for k in ranked[:3] if scores[k] >= max(0.6, best - 0.1)]
        leaf = lowered.rsplit(".", 1)[-1]
        close += [k for k in self._specs if k.rsplit(".", 1)[-1] == leaf and k not in close]
        if close:
            return "did you mean " + " or ".join(close) + "?"
        top = sorted({k.split(".", 1)[0] for k in self._specs})
        return f"the known sections are {', '.join(top)} (docs/configuration.md lists every key)"

    def flatten(self, mapping: Mapping[Any, Any], source: str) -> dict[str, Any]:
        """Turn nested sections and dotted names into one flat ``{dotted key: value}`` dict.

        Keys are not validated here, but a mapping under a known key is kept as that key's value
        (so the type error names the key). An empty section (``network:`` with nothing below)
        is dropped; the same key given twice is an error.
        """
        flat: dict[str, Any] = {}

        def walk(node: Mapping[Any, Any], prefix: str) -> None:
            for name, value in node.items():
                if not isinstance(name, str):
                    msg = f"config keys must be strings, got {name!r} (from {source})"
                    raise ConfigError(msg)
                key = prefix + name
                if isinstance(value, Mapping) and key not in self._specs:
                    walk(value, key + ".")
                elif value is None and key in self._sections:
                    continue
                elif key in flat:
                    msg = f"config key {key!r} is given twice (in {source}); keep one"
                    raise ConfigError(msg)
                else:
                    flat[key] = value

        walk(mapping, "")
        return flat

    def validate_mapping(self, mapping: Mapping[Any, Any], source: str) -> dict[str, Any]:
        """Flatten ``mapping``, check every key and value, and return the normalised values."""
        return {
            key: self.lookup(key, source).validate(value, source)
            for key, value in self.flatten(mapping, source).items()
        }

    def markdown_table(self) -> str:
        """Render every key as the Markdown table in ``docs/configuration.md``."""
        rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for spec in self._specs.values():
            kind = spec.type
            if spec.choices is not None:
                kind += ": " + ", ".join(f"`{c}`" for c in spec.choices)
            if spec.nullable:
                kind += " or null"
            default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
            shown = yaml.safe_dump(default, default_flow_style=True).removesuffix("\n")
            shown = shown.removesuffix("\n...")
            if spec.bounds():
                kind += ", " + spec.bounds()
            doc = spec.doc.replace("|", "\\|")
            rows.append(f"| `{spec.key}` | {kind} | `{shown}` | {doc} |")
        return "\n".join(rows) + "\n"


_SCHEMA_FILE = "schema.yaml"
_SPEC_FIELDS = frozenset({"type", "default", "doc", "choices", "nullable", "min", "max", "above"})
_BOUND_FIELDS = {"min": "minimum", "max": "maximum", "above": "above"}


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_leaf(node: object) -> bool:
    return isinstance(node, Mapping) and isinstance(node.get("type"), str)


def _read_spec(key: str, node: Mapping[str, Any], where: str) -> KeySpec:
    extra = set(node) - _SPEC_FIELDS
    if extra:
        allowed = ", ".join(sorted(_SPEC_FIELDS))
        msg = f"{where}: key {key!r} has unknown fields {sorted(extra)}; allowed: {allowed}"
        raise ConfigError(msg)
    kind = node["type"]
    if kind not in TYPES:
        msg = f"{where}: key {key!r} has unknown type {kind!r}; use one of {', '.join(TYPES)}"
        raise ConfigError(msg)
    if "default" not in node or not isinstance(node.get("doc"), str) or not node["doc"]:
        msg = f"{where}: key {key!r} needs a default and a one-line doc"
        raise ConfigError(msg)
    choices = node.get("choices")
    if (kind == "choice") != isinstance(choices, list) or choices == []:
        msg = f"{where}: key {key!r}: a choice key, and only a choice key, needs a choices list"
        raise ConfigError(msg)
    nullable = node.get("nullable", False)
    if not isinstance(nullable, bool):
        msg = f"{where}: key {key!r}: nullable must be true or false, got {nullable!r}"
        raise ConfigError(msg)
    bounds: dict[str, float] = {}
    for field_name, attr in _BOUND_FIELDS.items():
        if field_name not in node:
            continue
        bound = node[field_name]
        if kind not in ("int", "float"):
            msg = f"{where}: key {key!r}: only an int or float key has bounds ({field_name})"
            raise ConfigError(msg)
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            msg = f"{where}: key {key!r}: {field_name} must be a number, got {bound!r}"
            raise ConfigError(msg)
        bounds[attr] = bound
    spec = KeySpec(
        key=key,
        type=kind,
        default=node["default"],
        doc=node["doc"],
        choices=tuple(choices) if choices is not None else None,
        nullable=nullable,
        **bounds,
    )
    default = spec.validate(spec.default, source=f"the default in {where}")
    return dataclasses.replace(spec, default=default)


def load_schema(text: str, where: str) -> Schema:
    """Build a :class:`Schema` from the YAML ``text`` of a schema file named ``where``.

    Examples
    --------
    >>> s = load_schema("a:\\n  b: {type: int, default: 1, doc: An example.}\\n", "example")
    >>> s["a.b"].default
    1
    """
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"cannot parse the config schema {where}: {exc}"
        raise ConfigError(msg) from exc
    specs: dict[str, KeySpec] = {}

    def walk(node: object, prefix: str) -> None:
        if not isinstance(node, Mapping):
            msg = f"{where}: {prefix.rstrip('.')!r} must be a section or a key spec"
            raise ConfigError(msg)
        for name, child in node.items():
            key = f"{prefix}{name}"
            if _is_leaf(child):
                specs[key] = _read_spec(key, child, where)
            else:
                walk(child, key + ".")

    walk(tree or {}, "")
    return Schema(specs)


@functools.cache
def _packaged_schema() -> Schema:
    source = resources.files("twister2.config").joinpath(_SCHEMA_FILE)
    return load_schema(source.read_text(encoding="utf-8"), where=str(source))


def schema() -> dict[str, KeySpec]:
    """Describe every configuration key: its type, default, doc, choices and nullability.

    Returns
    -------
    dict[str, KeySpec]
        A fresh dict from dotted key to :class:`KeySpec`, in ``schema.yaml`` order.

    Examples
    --------
    >>> spec = schema()["master.failure_timeout"]
    >>> spec.type, spec.default
    ('float', 10.0)
    """
    return dict(_packaged_schema())


def default(key: str) -> Any:
    """Return the one default of config ``key``, from the packaged ``schema.yaml``.

    Code that needs a key's default (when no resolved config is at hand) reads it here instead
    of writing the value again. A ``list[str]`` default comes back as a fresh list.

    Raises
    ------
    ConfigError
        For an unknown key, suggesting the key that was probably meant.

    Examples
    --------
    >>> default("net.batch_records"), default("network.recv_timeout")
    (1024, 600.0)
    >>> default("net.batch_record")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twister2.config.ConfigError: unknown config key 'net.batch_record' (from default()); ...
    """
    value = _packaged_schema().lookup(key, "default()").default
    return list(value) if isinstance(value, tuple) else value


def lookup(config: Mapping[str, Any], key: str) -> Any:
    """``config[key]`` when ``config`` has the key (a resolved config has them all), else the
    key's one default from the schema: for code handed a partial mapping.

    >>> lookup({"net.batch_records": 8}, "net.batch_records"), lookup({}, "net.batch_records")
    (8, 1024)
    """
    return config[key] if key in config else default(key)
