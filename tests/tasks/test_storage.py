"""Storage by URI: local paths, file:// and memory:// alike, for datasets and model folders."""

import pyarrow as pa
import pytest

from tasks import storage


@pytest.fixture(params=["local", "file", "memory"])
def root(request, tmp_path) -> str:
    return {"local": str(tmp_path), "file": tmp_path.as_uri(), "memory": f"memory://{tmp_path.name}"}[request.param]


def test_a_model_folder_is_written_whole_and_read_through_a_local_copy(root, tmp_path):
    uri = storage.join(root, "models", "student-abc")
    assert not storage.folder_complete(uri)
    with storage.model_folder(uri) as folder:
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "config.json").write_text("{}")
        assert not storage.folder_complete(uri)  # nothing at the URI until the folder is whole
    assert storage.folder_complete(uri)
    local = storage.local_folder(uri)
    assert (local / "model.safetensors").read_bytes() == b"weights" and (local / "config.json").exists()
    if storage.is_local(uri):
        assert local == storage.local_path(uri)  # no copy of what is already on this disk


def test_a_crash_while_saving_leaves_no_folder_behind(root):
    uri = storage.join(root, "models", "broken")
    with pytest.raises(RuntimeError), storage.model_folder(uri) as folder:
        (folder / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-save")
    assert not storage.folder_complete(uri) and not storage.exists(storage.join(uri, "model.safetensors"))


def test_files_by_uri(root):
    uri = storage.join(root, "a", "b.parquet")
    storage.write_table(pa.table({"x": [1, 2]}), uri)
    assert storage.exists(uri) and storage.read_table(uri).column("x").to_pylist() == [1, 2]
    assert storage.digest(str(storage.local_file(uri))) == storage.digest(uri)  # a local copy, byte for byte


def test_local_paths_are_made_absolute_and_uris_kept():
    assert storage.canonical("relative/dir").startswith("/")
    assert storage.canonical("memory://x/y") == "memory://x/y"
    with pytest.raises(ValueError, match="not on the local disk"):
        storage.local_path("memory://x/y")


def test_s3_options_come_from_the_storage_config_and_the_key_from_a_credentials_block(prefect_server):
    import fsspec
    from prefect_aws import AwsCredentials

    from flows.distill import DistillConfig
    from tasks.tracking import flat_params

    AwsCredentials(aws_access_key_id="AKIA-TEST", aws_secret_access_key="wJalr-not-a-real-secret").save(
        "s3-logs-reader", overwrite=True
    )
    config = storage.StorageConfig(
        s3_endpoint_url="http://127.0.0.1:9000", s3_region="eu-north-1", aws_credentials_block="s3-logs-reader"
    )
    try:
        storage.configure(config)
        options = fsspec.config.conf["s3"]
        assert options == {
            "endpoint_url": "http://127.0.0.1:9000",
            "client_kwargs": {"region_name": "eu-north-1"},
            "key": "AKIA-TEST",
            "secret": "wJalr-not-a-real-secret",
        }
    finally:
        fsspec.config.conf.pop("s3", None)
    params = flat_params(DistillConfig(storage=config))  # the block's name is a param, its secret never
    assert params["storage.aws_credentials_block"] == "s3-logs-reader"
    assert not [v for v in params.values() if "wJalr" in v]


def test_an_unknown_credentials_block_is_one_line_naming_the_field(prefect_server):
    config = storage.StorageConfig(aws_credentials_block="no-such-block")
    with pytest.raises(storage.StorageError, match="storage.aws_credentials_block 'no-such-block': no AwsCredentials"):
        storage.configure(config)
