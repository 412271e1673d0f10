"""What a prompt the teacher wrote must pass to join the training prompts, measured on the coverage map.

Checked in order, the first failure its reason: `empty`; `truncated` (cut off before the prompt ended); a
`refusal`; `not_a_prompt` (a reply about the request: "Here is …"); a `copy_of_seed` (the text of a seed it was
shown or of the prompt it rewrote, or a cosine >= 0.98 to one); a `near_duplicate` of any prompt on the map, held
out, or kept before it (a rewrite is compared with its own lineage by the copy check only); `off_topic`, when the
map places it in another cluster than its target's, or under `on_topic` times as close to its target's centre as
the target's real prompts are.
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
    target: str  # the thin cluster or slice it was written for
    cluster: int  # where the map must place it
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
class Target:
    """Where new prompts go: a thin cluster (its commonest slice's) or a thin slice (wherever the map put it)."""

    name: str  # "cluster 3", "slice sounds"
    slice: str  # the slice its prompts join
    home: int  # the cluster the map must place them in
    have: int  # its training prompts
    seeds: list[dict]  # its distinct real prompts a teacher may be shown: none held out
    centre: np.ndarray  # its production prompts' mean direction
    spread: float  # the cosine to the centre that all but the farthest 5 % of its production prompts reach


@dataclass
class Map:
    """The coverage map as synthesis reads it: who is where, and every prompt's vector."""

    rows: list[dict]
    vectors: np.ndarray
    means: np.ndarray  # each cluster's production prompts' mean: its k-means centroid, placing as the map does

    @classmethod
    def read(cls, ref: DatasetRef) -> Map:
        table = read_table(ref)
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        vectors = flat.reshape(-1, WIDTH).astype(np.float32)
        rows = table.drop_columns(["embedding"]).to_pylist()
        clusters = np.array([row["cluster"] for row in rows])
        production = np.array([row["part"] == "production" for row in rows])
        means = np.zeros((int(clusters.max(initial=-1)) + 1, WIDTH), dtype=np.float32)
        for cluster in np.unique(clusters[production]):
            means[cluster] = vectors[production & (clusters == cluster)].mean(axis=0)
        return cls(rows=rows, vectors=vectors, means=means)

    def targets(self, held_out: set[str]) -> list[Target]:
        """Every cluster and every slice of production as a place new prompts could go."""
        production = [i for i, row in enumerate(self.rows) if row["part"] == "production"]
        trained = Counter()
        for row in self.rows:
            if row["part"] == "train":
                trained[f"cluster {row['cluster']}"] += 1
                trained[f"slice {row['slice']}"] += 1
        groups: dict[str, list[int]] = {}
        for i in production:
            groups.setdefault(f"cluster {self.rows[i]['cluster']}", []).append(i)
            groups.setdefault(f"slice {self.rows[i]['slice']}", []).append(i)
        found = []
        for name, members in sorted(groups.items()):
            slices = Counter(self.rows[i]["slice"] for i in members)
            clusters = Counter(self.rows[i]["cluster"] for i in members)
            mostly, home = slices.most_common(1)[0][0], clusters.most_common(1)[0][0]
            pool = {}  # a slice's seeds from its home cluster: its new prompts must land there
            for i in members:
                text = self.rows[i]["prompt"]
                in_home = name.startswith("cluster ") or self.rows[i]["cluster"] == home
                if self.rows[i]["slice"] == mostly and in_home and normalize_text(text) not in held_out:
                    pool.setdefault(text, self.rows[i])
            mean = self.vectors[members].mean(axis=0)
            centre = mean / max(float(np.linalg.norm(mean)), 1e-9)
            spread = float(np.quantile(self.vectors[members] @ centre, 0.05))
            found.append(Target(name, mostly, home, trained[name],
                                [pool[text] for text in sorted(pool)], centre, spread))  # fmt: skip
        return found


class Checks:
    """Drops candidates with their reason, against what exists and what was kept before them."""

    def __init__(self, space: Map, targets: dict[str, Target], others: dict[str, list[str]], near_duplicate: float,
                 on_topic: float):  # fmt: skip
        """`others`: prompts that exist off the map, by what they are ("a held-out prompt", "a training prompt")."""
        self.space, self.targets, self.near_duplicate, self.on_topic = space, targets, near_duplicate, on_topic
        texts = [(name, text) for name, group in others.items() for text in group]
        self.existing = np.concatenate([space.vectors, embed([text for _, text in texts])])
        self.names = [f"{r['part']} {r['id']}" for r in space.rows] + [name for name, _ in texts]
        self.kept: list[tuple[str, np.ndarray]] = []

    def check(self, candidates: list[Candidate]) -> None:
        """Set each candidate's reason (None: kept), in order: an earlier one counts as existing. One the teacher
        refused keeps its reason."""
        vectors = embed([c.text for c in candidates])
        shown = sorted({text for c in candidates for text in c.against})  # the seeds: one embedding call for all
        seen = dict(zip(shown, embed(shown), strict=True))
        against = [
            np.stack([seen[text] for text in c.against]) if c.against else np.zeros((0, WIDTH)) for c in candidates
        ]
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
        target = self.targets[candidate.target]
        cosine, least = float(target.centre @ vector), self.on_topic * target.spread
        if cosine < least:
            return f"off_topic: cosine {cosine:.2f} to the centre of {target.name}, under {least:.2f}"
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
