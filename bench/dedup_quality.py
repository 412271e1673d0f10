"""Near-duplicate removal measured against exact Jaccard: redistill's engine beside datasketch's and datatrove's
MinHash pipelines, on one seeded corpus with planted near-duplicates.

    make bench-env                                         # the peers in their own venv (datatrove needs xxhash 3)
    .venv/bin/python bench/dedup_quality.py [docs ...]     # default 10000 100000
    .venv/bin/python bench/dedup_quality.py 1000000 --systems redistill   # the memory target

The corpus: documents of 50-200 words drawn from a Zipf vocabulary; a tenth of the originals get 1-3 edited
copies (substituted, deleted and inserted words) at an exact 5-word-shingle Jaccard similarity drawn uniformly
from 0.5-1; the documents shuffled. All systems use 5-word shingles, 128 permutations and a threshold of 0.8,
and keep the first document of a group. Judged per document: the documents that should go are those at exact
Jaccard >= 0.8 with a document kept before them (greedy in corpus order over the planted pairs); precision and
recall compare them with the documents each system dropped. Each system runs in its own process on this
machine's cores; peak MB is the resident memory of that process and its children, corpus included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"  # the peers' environment (make bench-env)
THRESHOLD, SHINGLE, PERMS = 0.8, 5, 128
SYSTEMS = ("redistill", "datasketch", "datatrove-9x13", "datatrove-14x8")


# ----------------------------------------------------------------------------- the corpus
def _vocabulary(rng: np.random.Generator, size: int = 30_000) -> np.ndarray:
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "an", "el", "or", "ven", "dra", "qu", "is"])
    lengths = rng.integers(2, 5, size=size)
    words = {"".join(rng.choice(syllables, n)) for n in lengths}
    return np.array(sorted(words))


def _shingles(words: list[str]) -> set[str]:
    return {" ".join(words[i : i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 1))}


def jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _edited(words: list[str], target: float, rng: np.random.Generator, vocabulary: np.ndarray) -> list[str]:
    """`words` with the fewest random edits that bring its exact Jaccard to the original down to `target`."""
    edits = [(rng.integers(3), rng.integers(len(words)), str(rng.choice(vocabulary))) for _ in range(len(words))]

    def apply(m: int) -> list[str]:
        copy = list(words)
        for kind, at, word in edits[:m]:
            at = min(at, len(copy) - 1)
            if kind == 0:
                copy[at] = word
            elif kind == 1 and len(copy) > 10:
                del copy[at]
            else:
                copy.insert(at, word)
        return copy

    low, high = 0, len(edits)  # the similarity falls as edits pile up: find the fewest at or below target
    while low < high:
        mid = (low + high) // 2
        if jaccard(words, apply(mid)) > target:
            low = mid + 1
        else:
            high = mid
    return apply(low)


def make_corpus(docs: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """`docs` texts and, per text, its group (an original and its copies share one). Texts are built as strings
    from shared vocabulary words: a million documents take about a gigabyte here, not ten."""
    rng = np.random.default_rng(seed)
    vocabulary = _vocabulary(rng)
    words = vocabulary.tolist()
    weights = 1 / np.arange(1, len(vocabulary) + 1) ** 1.1
    weights /= weights.sum()

    def document() -> str:
        return " ".join([words[i] for i in rng.choice(len(words), rng.integers(50, 201), p=weights).tolist()])

    originals = int(docs / 1.2)
    texts = [document() for _ in range(originals)]
    groups = list(range(originals))
    copied = rng.choice(originals, size=originals // 10, replace=False)
    for group in copied.tolist():
        for _ in range(rng.integers(1, 4)):
            if len(texts) == docs:
                break
            texts.append(" ".join(_edited(texts[group].split(), rng.uniform(0.5, 1.0), rng, vocabulary)))
            groups.append(group)
    while len(texts) < docs:
        texts.append(document())
        groups.append(len(groups) + docs)
    order = rng.permutation(len(texts)).tolist()
    return [texts[i] for i in order], [groups[i] for i in order]


def should_drop(texts: list[str], groups: list[int]) -> set[int]:
    """Documents at exact Jaccard >= threshold with an earlier kept one (pairs within planted groups)."""
    members: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    dropped = set()
    for docs in members.values():
        kept: list[int] = []
        for i in docs:
            words = texts[i].split()
            if any(jaccard(texts[k].split(), words) >= THRESHOLD for k in kept):
                dropped.add(i)
            else:
                kept.append(i)
    return dropped


# ----------------------------------------------------------------------------- the systems
def run_redistill(texts: list[str], scratch: Path) -> set[int]:
    from tasks.minhash import Banding, near_duplicates

    return set(near_duplicates(texts, THRESHOLD, Banding(shingle_words=SHINGLE)).dropped().tolist())


def run_datasketch(texts: list[str], scratch: Path) -> set[int]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERMS)  # it picks 9 bands x 13 rows
    shingled = [[s.encode() for s in _shingles(t.split())] for t in texts]
    dropped = set()
    for i, signature in enumerate(MinHash.bulk(shingled, num_perm=PERMS)):
        if lsh.query(signature):
            dropped.add(i)
        else:
            lsh.insert(i, signature)
    return dropped


def run_datatrove(texts: list[str], scratch: Path, buckets: int, per_bucket: int) -> set[int]:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        """The corpus is lowercase words and spaces: its English default (NLTK) would need a download."""

        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    config = MinhashConfig(
        hash_config=HashConfig(precision=64), num_buckets=buckets, hashes_per_bucket=per_bucket, n_grams=SHINGLE
    )
    workers = 2

    def documents(data=None, rank: int = 0, world_size: int = 1):
        """A contiguous shard per task: datatrove keeps a cluster's lowest (task, document), the corpus's first."""
        share = -(-len(texts) // world_size)
        for i in range(rank * share, min((rank + 1) * share, len(texts))):
            yield Document(text=texts[i], id=str(i))

    common = {"logging_dir": str(scratch / "logs"), "skip_completed": False}
    for pipeline, tasks in (
        ([documents, MinhashDedupSignature(str(scratch / "sigs"), config=config, language=Whitespace())], workers),
        ([MinhashDedupBuckets(str(scratch / "sigs"), str(scratch / "buckets"), config=config)], buckets),
        ([MinhashDedupCluster(str(scratch / "buckets"), str(scratch / "remove"), config=config)], 1),
        ([documents, MinhashDedupFilter(str(scratch / "remove"), exclusion_writer=JsonlWriter(str(scratch / "out")))],
         workers),
    ):  # fmt: skip
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, **common).run()
    dropped = set()
    for path in (scratch / "out").glob("*.jsonl*"):
        import gzip

        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            dropped |= {int(json.loads(line)["id"]) for line in f}
    return dropped


def run_system(name: str, corpus: Path, out: Path) -> None:
    """In a child process: one system on the corpus; its dropped ids and seconds to `out`."""
    texts = json.loads(corpus.read_text())["texts"]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if name == "redistill":
            dropped = run_redistill(texts, Path(tmp))
        elif name == "datasketch":
            dropped = run_datasketch(texts, Path(tmp))
        else:
            buckets, per_bucket = (9, 13) if name == "datatrove-9x13" else (14, 8)
            dropped = run_datatrove(texts, Path(tmp), buckets, per_bucket)
        seconds = time.perf_counter() - start
    out.write_text(json.dumps({"dropped": sorted(dropped), "seconds": seconds}))


def _peak_mb(process: subprocess.Popen) -> float:
    """The largest resident memory of the process and its children together, sampled every 50 ms."""
    import psutil

    parent, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    return peak / 2**20


def measure(docs: int, systems: list[str]) -> list[dict]:
    texts, groups = make_corpus(docs)
    truth = should_drop(texts, groups)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps({"texts": texts}))
        for name in systems:
            out = Path(tmp) / f"{name}.json"
            python = sys.executable if name == "redistill" else BENCH_PYTHON
            log = Path(tmp) / f"{name}.log"
            with open(log, "w") as output:  # datatrove reports every step: kept for a failure only
                child = subprocess.Popen(
                    [str(python), __file__, "--one", name, str(corpus), str(out)], stdout=output, stderr=output
                )
                peak = _peak_mb(child)  # until it exits
            if child.returncode:
                error = log.read_text().strip().splitlines()[-1:] or [f"exit {child.returncode}"]
                results.append({"system": name, "docs": docs, "error": error[0]})
                continue
            found = json.loads(out.read_text())
            dropped = set(found["dropped"])
            hits = len(dropped & truth)
            results.append(
                {
                    "system": name,
                    "docs": docs,
                    "docs_per_s": docs / found["seconds"],
                    "peak_mb": peak,
                    "precision": hits / len(dropped) if dropped else 1.0,
                    "recall": hits / len(truth) if truth else 1.0,
                    "should_drop": len(truth),
                    "dropped": len(dropped),
                }
            )
    return results


def main(sizes: list[int], systems: list[str]) -> None:
    print(f"{'docs':>8} {'system':<16}{'docs/s':>9}{'peak MB':>9}{'precision':>11}{'recall':>8}{'dropped':>9}")
    for docs in sizes:
        for r in measure(docs, systems):
            if "error" in r:
                print(f"{docs:>8} {r['system']:<16}  {r['error']}")
                continue
            print(
                f"{docs:>8} {r['system']:<16}{r['docs_per_s']:>9,.0f}{r['peak_mb']:>9,.0f}"
                f"{r['precision']:>11.3f}{r['recall']:>8.3f}{r['dropped']:>6}/{r['should_drop']}"
            )
    print("targets: precision and recall >= 0.95, docs/s >= the better peer's, peak <= 4 GB at 1M documents")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        run_system(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        import argparse

        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("docs", nargs="*", type=int, default=[10_000, 100_000], help="corpus sizes")
        parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
        args = parser.parse_args()
        main(args.docs, args.systems)
