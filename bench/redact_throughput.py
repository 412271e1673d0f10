"""Redaction throughput: the stage's batched Presidio path against a per-row `analyze` loop.

    .venv/bin/python bench/redact_throughput.py [rows]

Prints rows/s for both and the ratio (target: batched at least 1.5x the loop on 2 cores).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.demo_traffic import generate_traffic  # noqa: E402
from tasks.redact import RedactConfig, Redactor  # noqa: E402


def main(rows: int = 400) -> None:
    traffic = generate_traffic(rows=rows, seed=7, malformed=0)
    texts = [json.loads(line)["prompt"] for line in traffic.lines]
    config = RedactConfig()
    redactor = Redactor(config)
    redactor.redact(texts[:16])  # warm up spaCy

    start = time.perf_counter()
    batched = redactor.redact(texts)
    batched_rate = len(texts) / (time.perf_counter() - start)

    analyzer = redactor.batch.analyzer_engine
    start = time.perf_counter()
    for text in texts:
        found = analyzer.analyze(text, language="en", entities=config.entities, score_threshold=config.score_threshold)
        redactor.anonymizer.anonymize(text=text, analyzer_results=found)
    loop_rate = len(texts) / (time.perf_counter() - start)

    leaks = sum(p in text for text, _ in batched for p in traffic.pii)
    print(f"{'path':<10}{'rows/s':>10}")
    print(f"{'batched':<10}{batched_rate:>10.1f}")
    print(f"{'per-row':<10}{loop_rate:>10.1f}")
    print(f"ratio batched/per-row: {batched_rate / loop_rate:.2f}x   planted PII left: {leaks}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
