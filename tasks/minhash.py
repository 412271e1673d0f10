"""Near-duplicate lookup by MinHash LSH (datasketch) over word shingles: dedup's duplicates and
decontamination, and drift's "has this prompt a near neighbour in earlier traffic"."""

from __future__ import annotations

from datasketch import MinHash, MinHashLSH

from tasks.stage import normalize_text


def shingles(text: str, k: int) -> set[str]:
    """Word k-grams of the normalised text (the whole text when it is shorter than k words)."""
    words = normalize_text(text).split()
    return {" ".join(words[i : i + k]) for i in range(max(len(words) - k + 1, 1))}


class NearDuplicateIndex:
    """MinHash LSH over texts; `find` returns the key of an indexed text at least `threshold` alike."""

    def __init__(self, threshold: float, num_perm: int = 128, shingle_words: int = 3):
        self.threshold, self.num_perm, self.shingle_words = threshold, num_perm, shingle_words
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.hashes: dict[str, MinHash] = {}

    def signature(self, text: str) -> MinHash:
        m = MinHash(num_perm=self.num_perm, seed=1)
        m.update_batch([s.encode() for s in shingles(text, self.shingle_words)])
        return m

    def add(self, key: str, signature: MinHash) -> None:
        self.lsh.insert(key, signature)
        self.hashes[key] = signature

    def find(self, signature: MinHash) -> str | None:
        # LSH gives candidates; the Jaccard estimate confirms (LSH alone admits false positives)
        alike = [k for k in self.lsh.query(signature) if self.hashes[k].jaccard(signature) >= self.threshold]
        return min(alike) if alike else None
