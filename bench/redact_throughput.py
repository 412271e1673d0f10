"""Redaction throughput: the redactor against one Presidio `AnalyzerEngine.analyze` per row, on the same texts.

    .venv/bin/python bench/redact_throughput.py [rows]

The texts are a demo production log (its prompts repeat, as real traffic does). The baseline is what a
Presidio user writes first: the same recognizers and entities, spaCy's full pipeline, `analyze` row by
row. Ours analyses each distinct text once, batched through spaCy's `pipe` with the dependency parser
off, in one process and then in worker processes (one per core; they pay for their start, a spaCy
load each, from about 10,000 distinct texts). Prints rows/s and the ratios (target: at least 4x on
2 cores) and the planted PII left (none).
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.demo_traffic import generate_traffic  # noqa: E402
from tasks.pii import RedactConfig, Redactor  # noqa: E402
from tasks.pii.redactor import build_analyzer  # noqa: E402


def per_row_baseline(texts: list[str], config: RedactConfig) -> float:
    """Rows/s of Presidio's defaults (spaCy's whole pipeline, its phone recognizer) plus our recognizers."""
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    analyzer = build_analyzer(config)
    for name in analyzer.nlp_engine.nlp["en"].disabled:
        analyzer.nlp_engine.nlp["en"].enable_pipe(name)
    analyzer.registry.add_recognizer(PhoneRecognizer())
    analyzer.analyze(texts[0], language="en")  # warm up
    start = time.perf_counter()
    for text in texts:
        analyzer.analyze(text, language="en", entities=config.entities, score_threshold=config.score_threshold)
    return len(texts) / (time.perf_counter() - start)


def ours(texts: list[str], config: RedactConfig) -> tuple[float, list]:
    redactor = Redactor(config)
    redactor.redact(texts[:8])  # warm up (spaCy loads lazily)
    start = time.perf_counter()
    redacted = redactor.redact(texts)
    return len(texts) / (time.perf_counter() - start), redacted


def main(rows: int = 20_000) -> None:
    traffic = generate_traffic(rows=rows, seed=7, malformed=0)
    texts = [json.loads(line)["prompt"] for line in traffic.lines]
    print(f"{len(texts)} rows, {len(set(texts))} distinct, {os.cpu_count()} cores")
    baseline = per_row_baseline(texts[:2000], RedactConfig())  # a per-row loop's rate does not depend on size
    one_process, _ = ours(texts, RedactConfig(workers=1))
    workers, redacted = ours(texts, RedactConfig(workers=0))
    leaks = sum(value in text for text, _ in redacted for value in traffic.pii)
    print(f"{'path':<44}{'rows/s':>10}{'ratio':>8}")
    print(f"{'Presidio analyze, one row at a time':<44}{baseline:>10.1f}{1:>8.2f}")
    print(f"{'redactor, one process':<44}{one_process:>10.1f}{one_process / baseline:>8.2f}")
    print(f"{'redactor, a worker per core':<44}{workers:>10.1f}{workers / baseline:>8.2f}")
    print(f"planted PII left: {leaks}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
