"""S3 and S3-compatible stores (MinIO, Ceph, moto) through ``pyarrow.fs.S3FileSystem``.

The endpoint, credentials, region and timeouts come from the ``io.s3.*`` keys; empty keys
leave the choice to the AWS SDK (``AWS_ACCESS_KEY_ID`` and friends, ``~/.aws``, an instance
role). Objects carry no host, so S3 splits name none.

Example
-------
>>> from twister2.io.filesystem import get_filesystem
>>> cfg = {"io.s3.endpoint": "http://127.0.0.1:9000", "io.s3.access_key": "k",
...        "io.s3.secret_key": "s"}
>>> fs, path = get_filesystem("s3://bucket/data/part-00000.parquet", cfg)
>>> fs.scheme, path, fs.url(path)
('s3', 'bucket/data/part-00000.parquet', 's3://bucket/data/part-00000.parquet')
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow.fs as pafs

from twister2.config import Config
from twister2.io.errors import StorageUnavailableError
from twister2.io.filesystem import BlockLocation, FileSystem, _cached

__all__ = ["S3FileSystem"]

_NETWORK_MARKERS = (
    "NETWORK_CONNECTION",
    "curlCode",
    "Could not connect",
    "Couldn't connect",
    "Timeout was reached",
    "timed out",
    "Could not resolve host",
)


class S3FileSystem(FileSystem):
    """An S3 bucket namespace: paths are ``bucket/key``, URLs ``s3://bucket/key``."""

    scheme = "s3"

    def __init__(self, settings: tuple[str, str, str, str, float, float, int]) -> None:
        endpoint, access_key, secret_key, region, connect, request, attempts = settings
        options: dict[str, object] = {
            "connect_timeout": connect,
            "request_timeout": request,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
        }
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            options["scheme"] = parts.scheme
            options["endpoint_override"] = parts.netloc
        if access_key or secret_key:
            options["access_key"] = access_key
            options["secret_key"] = secret_key
        if region:
            options["region"] = region
        super().__init__(pafs.S3FileSystem(**options), "s3://")
        self.endpoint = endpoint or "AWS S3"

    @classmethod
    def from_url(cls, url: str, config: Config) -> tuple[FileSystem, str]:
        parts = urlsplit(url)
        if not parts.netloc:
            msg = f"S3 URL {url!r} names no bucket: write s3://bucket/key"
            raise ValueError(msg)
        settings = (
            str(config["io.s3.endpoint"]),
            str(config["io.s3.access_key"]),
            str(config["io.s3.secret_key"]),
            str(config["io.s3.region"]),
            float(config["io.s3.connect_timeout"]),
            float(config["io.s3.request_timeout"]),
            int(config["io.s3.max_attempts"]),
        )
        path = (parts.netloc + parts.path).rstrip("/")
        return _cached(cls, settings), path

    def block_locations(self, path: str, size: int) -> list[BlockLocation]:
        return []

    def write_atomic(self, path: str, data: bytes, *, staging: str | None = None) -> None:
        # An object appears whole when its upload completes: one upload is atomic.
        with self.open_output(path) as out:
            out.write(data)

    def make_dirs(self, path: str) -> None:
        # S3 has no directories: a key's "parents" exist as soon as the key does.
        return

    def translate(self, exc: OSError, path: str, action: str) -> OSError:
        text = str(exc)
        if any(marker in text for marker in _NETWORK_MARKERS):
            detail = text.split("; Details:")[0]
            return StorageUnavailableError(
                self.url(path),
                f"S3 endpoint {self.endpoint}",
                detail,
                hint="check io.s3.endpoint and that the server is up and reachable",
            )
        return super().translate(exc, path, action)
