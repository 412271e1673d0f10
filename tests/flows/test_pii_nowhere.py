"""A run that fails on purpose, over a log with PII in its good rows and in its malformed ones (bytes that
are not UTF-8, broken JSON, an over-long prompt, a time that is no time), leaves no planted value in the
Prefect home (its database, logs and results), in MLflow, or in the work dir outside the source stage's
own copy of the log."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

PLANTED = ["Ingrid Solberg", "ingrid.solberg@fjord.no", "+47 912 34 567", "NO93 8601 1117 948", "Kwame Mensah"]


def _log(path: Path) -> None:
    good = [
        {"id": f"g{i}", "slice": "s", "prompt": f"Hi, Ingrid Solberg here (ingrid.solberg@fjord.no). What is {i} + 2?"}
        for i in range(6)
    ]
    lines = [json.dumps(r).encode() for r in good] + [
        b'{"slice": "s", "prompt": "Kwame Mensah, caf\xe9, +47 912 34 567"}',  # not UTF-8
        b'{"slice": "s", "prompt": "IBAN NO93 8601 1117 948 from Ingrid Solberg',  # not JSON
        json.dumps({"slice": "s", "prompt": "Kwame Mensah " * 40}).encode(),  # over source.max_prompt_chars
        json.dumps({"slice": "s", "prompt": "Hi", "timestamp": "Kwame Mensah, +47 912 34 567"}).encode(),  # no time
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def _leaks(root: Path) -> list[tuple[str, str]]:
    found = []
    for path in [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]:
        if path.suffix == ".parquet":
            text = "\n".join(str(v) for row in pq.read_table(path).to_pylist() for v in row.values())
        else:
            text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [(str(path), value) for value in PLANTED if value in text]
    return found


def test_a_failed_run_leaves_no_planted_pii_in_prefect_mlflow_or_the_work_dir(tmp_path):
    _log(tmp_path / "log.jsonl")
    home, work = tmp_path / "prefect-home", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}
    command = [sys.executable, "-m", "flows.cli", "run", "--source.path", str(tmp_path / "log.jsonl")]
    command += ["--work_dir", str(work), "--source.eval_size", "2", "--source.max_prompt_chars", "200"]
    command += ["--teacher.model", str(tmp_path / "no-teacher-here")]  # fails after source and redact
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "no checkpoint (config.json) there" in done.stderr
    assert not [value for value in PLANTED if value in done.stdout + done.stderr]
    assert (work / "redact").is_dir() and (work / "mlflow.db").is_file() and any(home.rglob("*.db"))
    quarantine = next((work / "source").rglob("quarantine.parquet"))
    assert pq.read_table(quarantine).num_rows == 4  # the malformed rows were read, and quarantined
    leaks = _leaks(home) + [leak for part in work.iterdir() if part.name != "source" for leak in _leaks(part)]
    assert leaks == []
