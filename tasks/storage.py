"""Where datasets and model folders live. Every stage addresses them by URI, and only this module
turns a URI into bytes or a folder.

A URI is a local path, `file://…`, `memory://…` (fsspec's in-process filesystem, for tests), or any
other fsspec protocol whose package is installed (`s3://…` with s3fs): a new protocol needs no
change outside this module. Model folders are written locally first and uploaded (`model_folder`),
and read through a local copy (`local_folder`): transformers, PEFT and llmcompressor need a path.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
from pydantic import Field

from tasks.config import PLACE, Config

LOCAL_PROTOCOLS = ("file", "local")


class StorageConfig(Config):
    """How object storage is reached, for a work dir, a prompt log or model folders on `s3://`."""

    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of a store that is not AWS (SeaweedFS, MinIO, R2 …); none: $AWS_ENDPOINT_URL_S3, "
        "else AWS.",
        json_schema_extra=PLACE,
    )
    s3_region: str | None = Field(None, description="S3 region; none: $AWS_DEFAULT_REGION.", json_schema_extra=PLACE)
    aws_credentials_block: str | None = Field(
        None,
        description="Name of a Prefect AwsCredentials block holding the S3 key; none: the environment "
        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the machine's role.",
        json_schema_extra=PLACE,
    )


class StorageError(ValueError):
    """Object storage that cannot be set up as configured: one line naming the field."""


def configure(config: StorageConfig) -> None:
    """Make every `s3://` URI of this process use the configured endpoint, region and credentials (fsspec's
    per-protocol defaults: no URI carries them, so they reach no param, log or artifact)."""
    options: dict = {}
    if config.s3_endpoint_url:
        options["endpoint_url"] = config.s3_endpoint_url
    if config.s3_region:
        options["client_kwargs"] = {"region_name": config.s3_region}
    if config.aws_credentials_block:
        from prefect_aws import AwsCredentials

        try:
            credentials = AwsCredentials.load(config.aws_credentials_block)
        except ValueError:  # Prefect's "Unable to find block document named …"
            raise StorageError(
                f"storage.aws_credentials_block {config.aws_credentials_block!r}: no AwsCredentials block of that "
                "name on the Prefect server (create it in the UI's Blocks page, or leave it empty to use the "
                "environment)"
            ) from None
        options["key"] = credentials.aws_access_key_id
        options["secret"] = credentials.aws_secret_access_key.get_secret_value()
    fsspec.config.conf["s3"] = options


def _fs(uri: str):
    """(filesystem, path inside it) for a URI or a local path."""
    return fsspec.core.url_to_fs(str(uri))


def is_local(uri: str) -> bool:
    """Whether the URI is on this machine's disk (a plain path or file://)."""
    protocol = _fs(uri)[0].protocol
    return any(p in LOCAL_PROTOCOLS for p in ((protocol,) if isinstance(protocol, str) else protocol))


def local_path(uri: str) -> Path:
    """The local path of a local URI; anything else is refused (it would need a copy: `local_folder`)."""
    if not is_local(uri):
        raise ValueError(f"{uri} is not on the local disk")
    return Path(_fs(uri)[1])


def join(uri: str, *parts: str) -> str:
    """`uri/part/part`, keeping the protocol (`memory://w` + `a` -> `memory://w/a`)."""
    return "/".join([str(uri).rstrip("/"), *parts])


def canonical(uri: str) -> str:
    """A local path made absolute (so refs stay valid from any working directory); URIs unchanged."""
    return str(Path(uri).resolve()) if "://" not in str(uri) else str(uri)


def exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return fs.exists(path)


def digest(uri: str) -> str:
    """sha256 of a file's bytes (its content identity in cache keys)."""
    fs, path = _fs(uri)
    sha = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


# pyarrow is imported where it is used: vLLM's environment reads model folders through this module, without it
def write_table(table, uri: str) -> None:
    import pyarrow.parquet as pq

    fs, path = _fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f)


def write_bytes(data: bytes, uri: str) -> None:
    fs, path = _fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)


def read_table(uri: str):
    import pyarrow.parquet as pq

    fs, path = _fs(uri)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def local_file(uri: str) -> Path:
    """A local path holding the file at `uri`: the file itself when local, else a temporary copy."""
    if is_local(uri):
        return local_path(uri)
    fs, path = _fs(uri)
    copy = Path(tempfile.mkdtemp(prefix="redistill-file-")) / path.rsplit("/", 1)[-1]
    fs.get_file(path, str(copy))
    return copy


# ----------------------------------------------------------------------------- model folders
def folder_complete(uri: str) -> bool:
    """A model folder is complete once its `config.json` (or `adapter_config.json`) is there: both are
    written last (see `model_folder`)."""
    return exists(join(uri, "config.json")) or exists(join(uri, "adapter_config.json"))


@contextmanager
def model_folder(uri: str) -> Iterator[Path]:
    """A local folder to save a model into; on success it becomes the folder at `uri` whole.

    Local: written beside the target and renamed (a crash leaves no half folder at `uri`).
    Elsewhere: written to a temporary folder and uploaded, the config files last.
    """
    if is_local(uri):
        target = local_path(uri)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        yield partial
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return
    with tempfile.TemporaryDirectory(prefix="redistill-model-") as tmp:
        yield Path(tmp)
        fs, path = _fs(uri)
        files = sorted(Path(tmp).rglob("*"), key=lambda p: p.name in ("config.json", "adapter_config.json"))
        for file in (f for f in files if f.is_file()):
            fs.makedirs(f"{path}/{file.parent.relative_to(tmp)}".rstrip("/."), exist_ok=True)
            fs.put_file(str(file), f"{path}/{file.relative_to(tmp)}")


def local_folder(uri: str) -> Path:
    """A local folder holding the model folder at `uri`: the folder itself when local, else a copy in a
    cache keyed by the URI (a folder under a URI is written once: its key is its content)."""
    if is_local(uri):
        return local_path(uri)
    copy = Path(tempfile.gettempdir()) / "redistill-models" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if not (copy / ".complete").exists():
        fs, path = _fs(uri)
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        fs.get(path.rstrip("/") + "/", str(copy), recursive=True)
        (copy / ".complete").touch()
    return copy
