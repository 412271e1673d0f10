"""`source.path` as a glob over partitioned logs on the stack's S3 server: every partition read in name order,
a malformed row named by its file, ids unique across files, and a cache key that follows the set of objects
(a new partition or a rewritten one changes it; nothing else does)."""

import json

import pytest

from infra.services import ObjectStore
from tasks.logfile.files import LogError
from tasks.source import SourceConfig, check_source, log_digest, read_prompts

PROMPTS = [  # varied phrasings and scripts: the rows are read as they are, whatever they say
    "Wie spät ist es in Tokio, wenn es in Berlin 9 Uhr ist?",
    "¿Cuántos días tiene un año bisiesto?",
    "Translate 'good morning' into Japanese.",
    "Сколько будет 12 × 12?",
    "東京タワーの高さは？",
    "Résume ce paragraphe en une phrase.",
]


def _partition(rows: list[dict], bad: bool = False) -> bytes:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if bad:
        lines.insert(1, '{"slice": "qa", "prompt": "unterminated')
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def partitions(s3_env, request):
    s3 = ObjectStore(s3_env).client()
    prefix = f"logs/{request.node.name}"
    for hour in range(3):  # no ids: each row's place is its id, which must differ across files
        rows = [{"slice": "qa", "prompt": f"{PROMPTS[(hour * 2 + i) % len(PROMPTS)]} (#{hour}-{i})"} for i in range(2)]
        s3.put_object(
            Bucket=s3_env.s3_bucket, Key=f"{prefix}/2026-11-30T{hour:02d}.jsonl", Body=_partition(rows, bad=hour == 1)
        )
    s3.put_object(Bucket=s3_env.s3_bucket, Key=f"{prefix}/README.txt", Body=b"not a log")
    return s3, prefix, f"s3://{s3_env.s3_bucket}/{prefix}/2026-11-30T*.jsonl"


def test_a_glob_on_s3_reads_every_partition_and_names_the_file_of_a_bad_row(partitions):
    _, _, path = partitions
    read = read_prompts(SourceConfig(path=path))
    assert read.rows == 7 and len(read.valid) == 6
    assert [r["prompt"][-5:] for r in read.valid] == ["#0-0)", "#0-1)", "#1-0)", "#1-1)", "#2-0)", "#2-1)"]
    assert len({r["id"] for r in read.valid}) == 6  # row-1 of each file is not a duplicate id
    [bad] = read.quarantine
    assert bad["reason"].startswith("2026-11-30T01.jsonl row 2: not valid JSON")
    check_source(SourceConfig(path=path))  # the CLI's preflight reads it too


def test_the_cache_key_follows_the_objects_and_nothing_else(partitions):
    s3, prefix, path = partitions
    bucket = path.split("/")[2]
    before = log_digest(path)
    assert log_digest(path) == before
    s3.put_object(Bucket=bucket, Key=f"{prefix}/other.txt", Body=b"outside the glob")
    assert log_digest(path) == before
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}/2026-11-30T03.jsonl", Body=_partition([{"slice": "qa", "prompt": "new"}])
    )
    with_new_hour = log_digest(path)
    assert with_new_hour != before
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}/2026-11-30T00.jsonl", Body=_partition([{"slice": "qa", "prompt": "rewritten"}])
    )
    assert log_digest(path) not in (before, with_new_hour)


def test_a_missing_prefix_or_a_wrong_secret_is_one_line(s3_env, monkeypatch):
    with pytest.raises(LogError, match="no file matches this pattern"):
        log_digest(f"s3://{s3_env.s3_bucket}/logs/nothing-here/*.jsonl")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(LogError, match="cannot be listed") as error:
        log_digest(f"s3://{s3_env.s3_bucket}/logs/*/*.jsonl")
    assert "not-the-secret" not in str(error.value)
