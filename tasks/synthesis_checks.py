"""What a prompt the teacher wrote must pass to join the training prompts, measured on the coverage map.

Checked in order, the first failure its reason: `empty`; `truncated` (cut off before the prompt ended); a
`refusal`; `not_a_prompt` (a reply about the request: "Here is …"); a `copy_of_seed` (the text of a seed it was
shown or of the prompt it rewrote, or a cosine >= 0.98 to one); a `near_duplicate` of any prompt on the map, held
out, or kept before it (a rewrite is compared with its own lineage by the copy check only); `off_topic`, when the
map places it nearest another cluster's centre, or under `on_topic` times as close to its own as the cluster's
real prompts are.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tasks.coverage_map import nearest
from tasks.embed import WIDTH, embed
from tasks.instructions import NOT_A_PROMPT
from tasks.refs import DatasetRef
from tasks.stage import normalize_text, read_table

# an assistant declining, not a user asking ("I'm unable to log in" is a prompt): the filter's patterns are for answers
REFUSAL = re.compile(
    r"\bas an AI\b|^\W*I(?:'m| am) sorry,? but\b|\bI can(?:'t|not) (?:help|assist)(?: you)? with (?:that|this)\b|"
    r"^\W*I(?:'m| am) (?:not able|unable) to (?:help|assist|write|create)\b",
    re.IGNORECASE,
)
COPY_COSINE = 0.98  # a rewrite this close to its seed says nothing new


@dataclass
class Candidate:
    """A prompt the teacher wrote, where it came from, and why it was dropped (None: kept so far)."""

    id: str
    cluster: int
    slice: str
    parent: str  # the seed rows' ids (Self-Instruct), or the candidate it evolved
    operation: str
    depth: int
    text: str
    truncated: bool
    against: list[str]  # the texts it must not copy: its seeds, or its parent
    ancestors: tuple[str, ...] = ()  # the candidates it evolved from, nearest last
    reason: str | None = None
    pii: tuple[str, ...] = ()


@dataclass
class Map:
    """The coverage map as synthesis reads it: who is where, and every prompt's vector."""

    rows: list[dict]
    vectors: np.ndarray
    means: np.ndarray  # each cluster's production prompts' mean: its k-means centroid, placing as the map does
    centres: np.ndarray  # ... as a unit vector: the direction cosines are measured to
    spread: np.ndarray  # each cluster's: the cosine to its centre that all but the farthest 5 % of its prompts reach

    @classmethod
    def read(cls, ref: DatasetRef) -> Map:
        table = read_table(ref)
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        vectors = flat.reshape(-1, WIDTH).astype(np.float32)
        rows = table.drop_columns(["embedding"]).to_pylist()
        clusters = np.array([row["cluster"] for row in rows])
        production = np.array([row["part"] == "production" for row in rows])
        means = np.zeros((int(clusters.max(initial=-1)) + 1, WIDTH), dtype=np.float32)
        centres, spread = means.copy(), np.ones(len(means), dtype=np.float32)
        for cluster in np.unique(clusters[production]):
            members = vectors[production & (clusters == cluster)]
            means[cluster] = members.mean(axis=0)
            centres[cluster] = means[cluster] / max(np.linalg.norm(means[cluster]), 1e-9)
            spread[cluster] = np.quantile(members @ centres[cluster], 0.05)
        return cls(rows=rows, vectors=vectors, means=means, centres=centres, spread=spread)

    def clusters(self) -> list[int]:
        return sorted({row["cluster"] for row in self.rows if row["part"] == "production"})

    def training_counts(self) -> Counter:
        return Counter(row["cluster"] for row in self.rows if row["part"] == "train")

    def seed_pool(self, cluster: int, held_out: set[str]) -> tuple[str, list[dict]]:
        """The cluster's commonest slice in production, and its distinct prompts there that are not held out."""
        production = [r for r in self.rows if r["part"] == "production" and r["cluster"] == cluster]
        mostly = Counter(r["slice"] for r in production).most_common(1)[0][0]
        pool = {}
        for row in production:
            if row["slice"] == mostly and normalize_text(row["prompt"]) not in held_out:
                pool.setdefault(row["prompt"], row)
        return mostly, [pool[text] for text in sorted(pool)]


class Checks:
    """Drops candidates with their reason, against what exists and what was kept before them."""

    def __init__(self, space: Map, held_out: np.ndarray, near_duplicate: float, on_topic: float):
        self.space, self.near_duplicate, self.on_topic = space, near_duplicate, on_topic
        self.existing = np.concatenate([space.vectors, held_out]) if len(held_out) else space.vectors
        self.names = [f"{r['part']} {r['id']}" for r in space.rows] + ["a held-out prompt"] * len(held_out)
        self.kept: list[tuple[str, np.ndarray]] = []

    def check(self, candidates: list[Candidate]) -> None:
        """Set each candidate's reason (None: kept), in order: an earlier one counts as existing. One the teacher
        refused keeps its reason."""
        vectors = embed([c.text for c in candidates])
        against = [embed(c.against) for c in candidates]
        for candidate, vector, seeds in zip(candidates, vectors, against, strict=True):
            candidate.reason = candidate.reason or self.reason(candidate, vector, seeds)
            if candidate.reason is None:
                self.kept.append((candidate.id, vector))

    def reason(self, candidate: Candidate, vector: np.ndarray, seeds: np.ndarray) -> str | None:
        if not candidate.text:
            return "empty"
        if candidate.truncated:
            return "truncated"
        if REFUSAL.search(candidate.text):
            return "refusal"
        if NOT_A_PROMPT.search(candidate.text):
            return "not_a_prompt"
        plain = normalize_text(candidate.text)
        if any(plain == normalize_text(seed) for seed in candidate.against) or (
            len(seeds) and float((seeds @ vector).max()) >= COPY_COSINE
        ):
            return "copy_of_seed"
        found = self.nearest(vector, set(candidate.ancestors))  # an evolution is near its parent: the copy check
        if found and found[1] >= self.near_duplicate:
            return f"near_duplicate:{found[0]} cosine {found[1]:.2f}"
        placed = int(nearest(vector[None, :], self.space.means)[0])
        if placed != candidate.cluster:
            return f"off_topic: nearest cluster {placed}, not {candidate.cluster}"
        cosine = float(self.space.centres[candidate.cluster] @ vector)
        least = self.on_topic * float(self.space.spread[candidate.cluster])
        if cosine < least:
            return f"off_topic: cosine {cosine:.2f} to cluster {candidate.cluster}'s centre, under {least:.2f}"
        return None

    def nearest(self, vector: np.ndarray, lineage: set[str]) -> tuple[str, float] | None:
        """The closest existing or kept prompt outside the candidate's own lineage, and its cosine."""
        pool = [(self.existing, self.names)]
        others = [(i, v) for i, v in self.kept if i not in lineage]
        if others:
            pool.append((np.stack([v for _, v in others]), [f"synthetic {i}" for i, _ in others]))
        best = None
        for vectors, names in pool:
            if len(vectors):
                cosines = vectors @ vector
                i = int(np.argmax(cosines))
                if best is None or cosines[i] > best[1]:
                    best = (names[i], float(cosines[i]))
        return best
