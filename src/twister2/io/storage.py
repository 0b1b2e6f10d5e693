"""Persistent and volatile storage roots (Twister2's ``persistent.storage.root`` and
``volatile.storage.root``).

* **Persistent** storage outlives the job and is seen by every worker: checkpoints, persisted
  data sets, job outputs. ``storage.persistent_root`` is a shared directory (an NFS mount, the
  same path on every host) or a URL (``s3://bucket/prefix``, ``hdfs://namenode:8020/path``).
* **Volatile** storage is each worker's own local disk: spills, staging. ``storage.volatile_root``
  (default: ``<system temp>/twister2-volatile``).

``persistent://a/b`` and ``volatile://a/b`` are URLs under the roots; every io function
takes them.

Example
-------
>>> cfg = {"storage.persistent_root": "s3://bucket/twister2"}
>>> resolve_storage_url("persistent://ckpt/job-1", cfg)
's3://bucket/twister2/ckpt/job-1'
>>> storage_url("persistent", "ckpt", "job-1", config={"storage.persistent_root": "/nfs/t2"})
'/nfs/t2/ckpt/job-1'
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

from twister2.io._settings import ConfigLike, resolved

__all__ = ["persistent_root", "resolve_storage_url", "storage_url", "volatile_root"]

StorageKind = Literal["persistent", "volatile"]
SCHEMES: tuple[StorageKind, ...] = ("persistent", "volatile")


def persistent_root(config: ConfigLike = None) -> str:
    """The persistent storage root: a local directory (``~`` expanded) or a URL.

    Examples
    --------
    >>> persistent_root({"storage.persistent_root": "/nfs/twister2/"})
    '/nfs/twister2'
    """
    root = str(resolved(config)["storage.persistent_root"])
    return root if root == "/" else root.rstrip("/")


def volatile_root(config: ConfigLike = None) -> str:
    """The volatile storage root on this host's local disk.

    Examples
    --------
    >>> volatile_root({"storage.volatile_root": "/scratch/t2"})
    '/scratch/t2'
    >>> volatile_root().endswith("twister2-volatile")
    True
    """
    root = resolved(config)["storage.volatile_root"]
    if root is None:
        return os.path.join(tempfile.gettempdir(), "twister2-volatile")
    text = str(root)
    return text if text == "/" else text.rstrip("/")


def storage_url(kind: StorageKind, *parts: str, config: ConfigLike = None) -> str:
    """The URL of ``parts`` under the ``kind`` (persistent or volatile) root.

    Examples
    --------
    >>> storage_url("volatile", "spill", "w0", config={"storage.volatile_root": "/scratch"})
    '/scratch/spill/w0'
    """
    if kind not in SCHEMES:
        msg = f"unknown storage {kind!r} (known: persistent, volatile)"
        raise ValueError(msg)
    root = persistent_root(config) if kind == "persistent" else volatile_root(config)
    rest = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if not rest:
        return root
    return f"{root.rstrip('/')}/{rest}"


def resolve_storage_url(url: str, config: ConfigLike = None) -> str:
    """``url`` with a ``persistent://`` or ``volatile://`` prefix replaced by its root.

    Other URLs come back unchanged.

    Examples
    --------
    >>> resolve_storage_url("volatile://spill", {"storage.volatile_root": "/scratch"})
    '/scratch/spill'
    >>> resolve_storage_url("/data/x.txt")
    '/data/x.txt'
    """
    for kind in SCHEMES:
        prefix = f"{kind}://"
        if url.startswith(prefix):
            return storage_url(kind, url[len(prefix) :], config=config)
    return url
