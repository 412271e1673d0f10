"""Which files a prompt log is: one file, a local glob, or a glob on S3 (production logs come as many
partitioned files, one JSONL per hour, say), each with a content identity for the cache key.

Any fsspec URL works (`s3://bucket/logs/2026/11/*/*.jsonl`); the endpoint and credentials are the
storage section's (tasks/storage.py). A remote file is identified by its ETag (no download to find
out it is unchanged), a local one by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import fsspec

from tasks import storage

FORMATS = (".jsonl", ".csv", ".parquet")
GLOB_CHARS = "*?["


class LogError(ValueError):
    """The log cannot be read at all: said in one line, naming the file and what to do."""


@dataclass(frozen=True)
class LogFile:
    uri: str  # with its protocol, as fsspec reads it
    name: str  # for messages: the path below the glob's fixed part (or the file name)

    @property
    def suffix(self) -> str:
        return _suffix(self.uri)


def log_files(path: str) -> list[LogFile]:
    """The files `path` names, in name order (so partitions are read in time order), or LogError saying why none."""
    if not any(c in path for c in GLOB_CHARS) and _suffix(path) not in FORMATS:
        raise LogError(
            f"source.path {path}: unsupported prompt log format {_suffix(path)!r} (use .jsonl, .csv or .parquet)"
        )
    try:
        fs, inside = fsspec.core.url_to_fs(path)
        is_glob = any(c in inside for c in GLOB_CHARS)
        found = sorted(fs.glob(inside)) if is_glob else ([inside] if fs.isfile(inside) else [])
        found = [f for f in found if fs.isfile(f)]
    except Exception as e:  # each filesystem fails its own way: no bucket, no credentials, no s3fs, no server
        raise LogError(f"source.path {path}: cannot be listed ({type(e).__name__}: {e})") from None
    if not found:
        what = "no file matches this pattern" if is_glob else "no such file"
        hint = "" if is_glob else f"; set source.path, or write the demo's with `redistill demo-data --out {path}`"
        raise LogError(f"source.path {path}: {what}{hint}")
    fixed = inside[: min((inside.index(c) for c in GLOB_CHARS if c in inside), default=len(inside))]
    base = fixed.rsplit("/", 1)[0] + "/" if is_glob else inside.rsplit("/", 1)[0] + "/"
    names = {f: f.removeprefix(base) for f in found}
    if bad := next((f for f in found if _suffix(f) not in FORMATS), None):
        raise LogError(
            f"source.path {path}: unsupported prompt log format {_suffix(bad)!r}"
            + (f" ({names[bad]})" if is_glob else "")
            + " (use .jsonl, .csv or .parquet)"
        )
    return [LogFile(fs.unstrip_protocol(f), names[f]) for f in found]


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _version(file: LogFile) -> str:
    """ETag or sha256: changes when the content does (computed only for the cache key: a local log is read
    whole to hash it)."""
    if storage.is_local(file.uri):
        return storage.digest(file.uri)
    fs, path = fsspec.core.url_to_fs(file.uri)
    info = fs.info(path)
    return str(info.get("ETag") or info.get("etag") or info.get("md5") or fs.checksum(path)).strip('"')


def logs_digest(files: list[LogFile]) -> str:
    """One digest of the set of files by name and content: a new partition, or a changed one, changes it."""
    listing = "\n".join(f"{f.name}\t{_version(f)}" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()
