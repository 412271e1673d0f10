"""Source throughput on a large log: rows/s and peak memory of the source stage, per format.

    .venv/bin/python bench/source_throughput.py [rows]     # default 1,000,000

Writes a log of `rows` demo rows (JSONL, then the same rows as Parquet and CSV), runs the source stage on
each in a fresh process, and prints rows/s and the peak resident memory beside the file's size: the log
is read as a stream, row by row, so memory follows the valid rows kept for the split and the sample,
not the file.
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_logs(rows: int, folder: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from tasks.demo_traffic import generate_traffic

    lines = generate_traffic(rows=min(rows, 20_000), seed=3, malformed=0).lines
    jsonl = folder / "log.jsonl"
    with open(jsonl, "w") as f:
        for i in range(rows):  # the demo's rows again and again, each with its own id
            f.write(json.dumps({**json.loads(lines[i % len(lines)]), "id": f"r{i}"}) + "\n")
    table = pa.Table.from_pylist([json.loads(line) for line in open(jsonl)])
    pq.write_table(table, folder / "log.parquet")
    pacsv.write_csv(table, folder / "log.csv")
    return {"jsonl": jsonl, "parquet": folder / "log.parquet", "csv": folder / "log.csv"}


def run_one(path: str, out: str) -> None:
    """In a child process: the stage on `path`, then its seconds and peak RSS as JSON."""
    from tasks.source import SourceConfig, source

    start = time.perf_counter()
    result = source(SourceConfig(path=path, sample_size=10_000, eval_size=1_000), [], out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": result.report.rows_in, "seconds": seconds, "peak_mb": peak_mb}))


def main(rows: int = 1_000_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        logs = write_logs(rows, Path(tmp))
        print(f"{'format':<9}{'rows':>10}{'file MB':>9}{'rows/s':>10}{'peak MB':>9}")
        for name, path in logs.items():
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(path), str(Path(tmp) / f"out-{name}")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            found = json.loads(child.stdout.strip().splitlines()[-1])
            size = path.stat().st_size / 2**20
            rate = found["rows"] / found["seconds"]
            print(f"{name:<9}{found['rows']:>10}{size:>9.0f}{rate:>10.0f}{found['peak_mb']:>9.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        run_one(sys.argv[2], sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
