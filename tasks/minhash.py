"""Near-duplicates by MinHash LSH, decided by exact Jaccard: dedup's clusters, decontamination's near overlap,
drift's "has this prompt a near neighbour in earlier traffic".

Banding only proposes candidates, and permissively: at 32 bands of 4 rows a pair at Jaccard 0.8 is proposed
with probability 1 - 1e-7 (0.5: 0.87). The exact Jaccard of the two texts' shingle sets then decides, so the
MinHash estimate costs no recall near the threshold (datasketch's 9 x 13 proposes a pair at 0.8 only 40 % of
the time; confirming by the estimate drops true pairs on either side of it). One limit: a bucket of more than
64 texts (boilerplate) pairs each text with its first 64 members only; identical texts are merged before.

All in numpy, a batch of texts at a time: each distinct word hashed once, shingles mixed from word hashes,
signatures by multiply-shift hashing, band keys kept (16 bytes a band per text), signatures and shingles
dropped; the shingle sets of the few texts that are candidates are rebuilt to check them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tasks.stage import normalize_text

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
BATCH = 512  # texts per batch: a batch's hash table (perms x shingles) stays within a few MB per chunk
PERM_CHUNK = 32
LARGEST_BUCKET = 64  # a bucket this full (boilerplate) pairs each text with its first members only


@dataclass(frozen=True)
class Banding:
    """Shingle size and LSH banding: `bands` x `rows` MinHash permutations."""

    shingle_words: int = 5
    bands: int = 32
    rows: int = 4
    seed: int = 1

    @property
    def permutations(self) -> int:
        return self.bands * self.rows

    def proposal_rate(self, jaccard: float) -> float:
        """The probability that a pair at this Jaccard similarity shares a band (is checked at all)."""
        return 1 - (1 - jaccard**self.rows) ** self.bands

    @classmethod
    def for_threshold(cls, threshold: float, shingle_words: int, permutations: int = 128) -> Banding:
        """Within `permutations`, the most rows per band (fewest needless checks) that still propose 99.9 % of
        the pairs at `threshold`."""
        fits = [r for r in range(1, 17) if cls(shingle_words, permutations // r, r).proposal_rate(threshold) >= 0.999]
        rows = max(fits, default=1)
        return cls(shingle_words=shingle_words, bands=permutations // rows, rows=rows)


class Shingler:
    """Word k-grams as 64-bit hashes; each distinct word is hashed once (a vocabulary grows as texts come)."""

    def __init__(self, k: int):
        self.k = k
        self.vocabulary: dict[str, int] = {}
        self.word_hashes: list[int] = []
        rng = np.random.default_rng(7_919)
        self.mix = rng.integers(1, 2**63, size=k, dtype=np.uint64) | np.uint64(1)

    def _ids(self, words: list[str]) -> list[int]:
        vocabulary, hashes = self.vocabulary, self.word_hashes
        ids = []
        for word in words:
            index = vocabulary.get(word)
            if index is None:
                index = vocabulary[word] = len(hashes)
                hashes.append(int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little"))
            ids.append(index)
        return ids

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The shingle hashes of `texts`, concatenated, and where each text's run starts (one past: the end).

        A text shorter than k words is one shingle of all its words; an empty text is one shingle too."""
        ids: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            words = normalize_text(text).split()
            lengths[i] = len(words)
            ids += self._ids(words)
        words = np.asarray(self.word_hashes, dtype=np.uint64)[np.asarray(ids, dtype=np.int64)]
        ends = np.cumsum(lengths)
        starts = ends - lengths
        counts = np.maximum(lengths - self.k + 1, 1)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        first = np.repeat(starts, counts) + (np.arange(bounds[-1]) - np.repeat(bounds[:-1], counts))
        last = np.repeat(ends, counts)
        shingles = np.zeros(bounds[-1], dtype=np.uint64)
        padded = np.concatenate([words, np.zeros(1, dtype=np.uint64)])  # index len(words): a word past the end
        for j in range(self.k):
            at = first + j
            shingles += padded[np.where(at < last, at, len(words))] * self.mix[j]
        return _avalanche(shingles), bounds

    def sets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's distinct shingle hashes, sorted (8 bytes a shingle; a Python set of ints takes ten times it)."""
        shingles, bounds = self.batch(texts)
        return [np.unique(shingles[a:b]) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def _avalanche(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (multiply-shift hashing needs it)."""
    x = x ^ (x >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Signer:
    """Band keys of texts: MinHash by multiply-shift hashing ((a·x + b) mod 2^64, top 32 bits), `rows` minima
    folded into one 64-bit key per band."""

    def __init__(self, banding: Banding):
        self.banding = banding
        rng = np.random.default_rng(banding.seed)
        self.a = rng.integers(1, 2**63, size=banding.permutations, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=banding.permutations, dtype=np.uint64)
        self.fold = rng.integers(1, 2**63, size=banding.rows, dtype=np.uint64) | np.uint64(1)

    def signatures(self, shingles: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """(texts, permutations) minima (32-bit values, as uint64)."""
        texts, perms = len(bounds) - 1, self.banding.permutations
        out = np.empty((perms, texts), dtype=np.uint64)
        buffer = np.empty((PERM_CHUNK, len(shingles)), dtype=np.uint64)
        for start in range(0, perms, PERM_CHUNK):
            chunk = buffer[: min(PERM_CHUNK, perms - start)]
            np.multiply(self.a[start : start + len(chunk), None], shingles[None, :], out=chunk)
            chunk += self.b[start : start + len(chunk), None]
            chunk >>= np.uint64(32)
            out[start : start + len(chunk)] = np.minimum.reduceat(chunk, bounds[:-1], axis=1)
        return out.T

    def band_keys(self, shingles: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """(texts, bands) uint64: one key per band, equal when the band's `rows` minima are."""
        rows = self.banding.rows
        signatures = self.signatures(shingles, bounds).reshape(len(bounds) - 1, self.banding.bands, rows)
        return _avalanche((signatures * self.fold[None, None, :]).sum(axis=2, dtype=np.uint64))


def band_keys(texts: Sequence[str], banding: Banding, workers: int = 2) -> np.ndarray:
    """(texts, bands) band keys, computed batch by batch (numpy's hashing runs beside the next tokenising)."""
    shingler, signer = Shingler(banding.shingle_words), Signer(banding)
    keys = np.empty((len(texts), banding.bands), dtype=np.uint64)
    batches = [range(start, min(start + BATCH, len(texts))) for start in range(0, len(texts), BATCH)]
    with ThreadPoolExecutor(workers) as pool:
        pending = []
        for batch in batches:
            shingles, bounds = shingler.batch([texts[i] for i in batch])  # the vocabulary: one thread
            pending.append((batch, pool.submit(signer.band_keys, shingles, bounds)))
            if len(pending) > workers:
                done, future = pending.pop(0)
                keys[done.start : done.stop] = future.result()
        for done, future in pending:
            keys[done.start : done.stop] = future.result()
    return keys


def _identity(text: str) -> bytes:
    """A text's identity once normalised, in 16 bytes."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).digest()


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(pairs, 2) int64 index pairs i < j that share at least one band key, each pair once."""
    found = []
    for band in keys.T:
        order = np.argsort(band, kind="stable")
        ranked = band[order]
        starts = np.flatnonzero(np.concatenate([[True], ranked[1:] != ranked[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(ranked)]]))
        twos = starts[sizes == 2]
        found.append(np.stack([order[twos], order[twos + 1]], axis=1))
        for start, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist(), strict=True):
            members = order[start : start + size]  # stable: in text order, the best first
            for lead in range(min(size, LARGEST_BUCKET) - 1):  # each of the first members with every later one
                found.append(np.stack([np.full(size - lead - 1, members[lead]), members[lead + 1 :]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def exact_jaccard(texts: Sequence[str], pairs: np.ndarray, shingle_words: int) -> np.ndarray:
    """The exact Jaccard similarity of each pair's shingle sets."""
    involved = np.unique(pairs)
    sets = dict(zip(involved.tolist(), Shingler(shingle_words).sets([texts[i] for i in involved]), strict=True))
    similarity = np.empty(len(pairs))
    for n, (i, j) in enumerate(pairs.tolist()):
        shared = len(np.intersect1d(sets[i], sets[j], assume_unique=True))
        similarity[n] = shared / (len(sets[i]) + len(sets[j]) - shared)
    return similarity


@dataclass
class Duplicates:
    """Per text, the index of the kept text it repeats (-1: kept), and their exact Jaccard similarity."""

    original: np.ndarray
    jaccard: np.ndarray
    exact: np.ndarray  # the same text once normalised
    candidates: int  # pairs whose exact Jaccard was computed

    def dropped(self) -> np.ndarray:
        return np.flatnonzero(self.original >= 0)


def near_duplicates(
    texts: Sequence[str],
    threshold: float,
    banding: Banding = Banding(),
    confirm: Callable[[Sequence[int], np.ndarray], np.ndarray] | None = None,
) -> Duplicates:
    """Texts at least `threshold` alike (exact Jaccard of word shingles) to an earlier kept text: texts come best
    first, and each is dropped only for a kept one, never for one that was itself dropped. `confirm(indices,
    pairs)`: a further test a pair of alike texts must pass (pairs index `indices`, the texts' positions)."""
    n = len(texts)
    original, similarity, exact_copy = np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=bool)
    exact: dict[bytes, int] = {}  # by a digest of the normalised text: a million texts are not copied into a dict
    unique = []
    for i, text in enumerate(texts):  # identical texts need no hashing, and would crowd the buckets
        first = exact.setdefault(_identity(text), i)
        if first == i:
            unique.append(i)
        else:
            original[i], similarity[i], exact_copy[i] = first, 1.0, True
    unique_index = np.asarray(unique, dtype=np.int64)
    distinct = [texts[i] for i in unique]
    pairs = candidate_pairs(band_keys(distinct, banding))
    scores = exact_jaccard(distinct, pairs, banding.shingle_words) if len(pairs) else np.zeros(0)
    alike = scores >= threshold
    if confirm is not None and alike.any():
        alike[alike] = confirm(unique, pairs[alike])
    verified, scores = pairs[alike], scores[alike]
    order = np.lexsort((verified[:, 0], verified[:, 1]))  # by the later text, then its best partner first
    kept = np.ones(len(distinct), dtype=bool)
    for (early, late), score in zip(verified[order].tolist(), scores[order].tolist(), strict=True):
        if kept[early] and kept[late]:  # `early`'s fate is settled: every pair ending at it came before
            kept[late] = False
            original[unique_index[late]], similarity[unique_index[late]] = unique_index[early], score
    for i in np.flatnonzero(exact_copy).tolist():  # a copy of a text dropped since goes for the text kept instead
        if original[original[i]] >= 0:
            original[i], similarity[i], exact_copy[i] = original[original[i]], similarity[original[i]], False
    return Duplicates(original=original, jaccard=similarity, exact=exact_copy, candidates=len(pairs))


def near_neighbour_of(
    queries: Sequence[str], corpus: Sequence[str], threshold: float, banding: Banding = Banding()
) -> np.ndarray:
    """Per query, the index of a corpus text at least `threshold` alike (exact Jaccard of word shingles; the most
    alike), or -1."""
    # identical texts hashed once: traffic repeats itself, and a crowded bucket would cost pairs, not answers
    first: dict[bytes, int] = {}
    distinct: list[str] = []
    for text in [*corpus, *queries]:
        if first.setdefault(_identity(text), len(distinct)) == len(distinct):
            distinct.append(text)
    corpus_ids = np.array([first[_identity(t)] for t in corpus], dtype=np.int64)
    in_corpus = np.zeros(len(distinct), dtype=bool)
    in_corpus[corpus_ids] = True
    owner = np.full(len(distinct), -1, dtype=np.int64)
    owner[corpus_ids[::-1]] = np.arange(len(corpus))[::-1]  # a distinct text's first corpus position
    best = np.where(in_corpus, 1.0, 0.0)
    nearest = owner.copy()  # a text in the corpus is its own nearest neighbour
    pairs = candidate_pairs(band_keys(distinct, banding))
    across = pairs[in_corpus[pairs[:, 0]] != in_corpus[pairs[:, 1]]]
    if len(across):
        scores = exact_jaccard(distinct, across, banding.shingle_words)
        for (a, b), score in zip(across.tolist(), scores.tolist(), strict=True):
            known, query = (a, b) if in_corpus[a] else (b, a)
            if score >= threshold and score > best[query]:
                nearest[query], best[query] = owner[known], score
    return np.array([nearest[first[_identity(q)]] for q in queries], dtype=np.int64)
