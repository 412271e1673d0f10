"""The coverage map: production's prompts embedded (tasks.embed) and clustered (k-means; k by silhouette unless
fixed), with a 2-D projection (PCA). The source stage fits it over the window's prompts, samples by it when asked
(`stratify`), and writes where each prompt landed (schemas.COVERAGE_MAP) for the coverage stage's report.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from tasks.config import Config
from tasks.embed import WIDTH, cut_short, embed
from tasks.stage import user_text

SILHOUETTE_ROWS = 2000  # distinct prompts the silhouette is measured on (it costs their count squared)
CHUNK = 50_000  # prompts embedded at a time when every prompt of a log is placed (`stratify`)


class CoverageConfig(Config):
    """How production's prompts are mapped, and how the training sample is checked against the map."""

    enabled: bool = Field(True, description="Map production's prompts (embedded, clustered) before any teacher call.")
    clusters: int | None = Field(
        None, ge=2, description="Clusters on the map; none: the k in 2..max_clusters with the best silhouette."
    )
    max_clusters: int = Field(12, ge=2, description="The most clusters tried when `clusters` is none.")
    map_rows: int = Field(
        5000, ge=10, description="Production prompts on the map: the window's, or a seeded sample of this many."
    )
    thin_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A cluster is thin when its share of the training sample is under this times its share of "
        "production.",
    )
    stratify: bool = Field(
        False,
        description="Sample by cluster within each slice (every prompt of the window embedded): each cluster at "
        "least `min_per_cluster` prompts where it has them, the rest in proportion, so a rare intent is not starved.",
    )
    min_per_cluster: int = Field(2, ge=0, description="With `stratify`: prompts every cluster gets first.")


@dataclass
class Space:
    """Production's prompts embedded and clustered: the map the sample and the report share."""

    centroids: np.ndarray
    silhouette: float | None
    cut_short: int = 0  # the map's distinct prompts longer than the embedder reads
    axes: np.ndarray = field(default_factory=lambda: np.zeros((2, WIDTH)))  # the projection's principal axes
    center: np.ndarray = field(default_factory=lambda: np.zeros(WIDTH))
    seen: dict[str, np.ndarray] = field(default_factory=dict)  # the map's prompts, each text embedded once

    def vectors(self, texts: list[str], stage: str | None = None) -> np.ndarray:
        """The texts' embeddings, kept for the next call (the map's few thousand prompts, not a whole log)."""
        new = sorted(set(texts) - self.seen.keys())
        self.seen |= dict(zip(new, embed(new, stage=stage), strict=True))
        return np.stack([self.seen[text] for text in texts]) if texts else np.zeros((0, WIDTH), dtype=np.float32)

    def metrics(self) -> dict[str, float]:
        """The map's shape, for the source stage's report."""
        found = {"coverage.clusters": len(self.centroids), "coverage.prompts_cut_short": self.cut_short}
        return found | ({"coverage.silhouette": self.silhouette} if self.silhouette is not None else {})

    def clusters_of(self, rows: list[dict], stage: str | None = None) -> list[int]:
        """Each row's cluster; the prompts not on the map embedded a chunk at a time and not kept (a whole log's)."""
        texts = [user_text(row) for row in rows]
        distinct = sorted(set(texts) - self.seen.keys())
        found = dict(zip(self.seen, nearest(np.stack(list(self.seen.values())), self.centroids).tolist(), strict=True))
        for start in range(0, len(distinct), CHUNK):
            chunk = distinct[start : start + CHUNK]
            found |= dict(zip(chunk, nearest(embed(chunk, stage=stage), self.centroids).tolist(), strict=True))
        return [found[text] for text in texts]

    def map_rows(self, rows: list[dict], part: str) -> list[dict]:
        """COVERAGE_MAP rows: each prompt's cluster, position and embedding."""
        texts = [user_text(row) for row in rows]
        vectors = self.vectors(texts)
        points = (vectors - self.center) @ self.axes.T
        return [
            {"id": row["id"], "slice": row["slice"], "part": part, "cluster": int(c), "x": float(x), "y": float(y),
             "prompt": text, "embedding": vector}
            for row, text, c, (x, y), vector in zip(
                rows, texts, nearest(vectors, self.centroids), points, vectors, strict=True
            )
        ]  # fmt: skip


def nearest(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each vector's nearest centroid (Euclidean, as k-means fits them: the largest v·c - |c|²/2)."""
    return np.argmax(vectors @ centroids.T - 0.5 * (centroids**2).sum(axis=1), axis=1)


def fit_space(rows: list[dict], config: CoverageConfig, seed: int) -> Space:
    """Cluster `rows` (at most `map_rows` of them, seeded) and fit the 2-D projection.

    k-means runs on the distinct prompts weighted by how often each was asked; the silhouette that picks k is
    measured on the distinct prompts (up to SILHOUETTE_ROWS of them), each once: a prompt asked five thousand
    times is one intent, and a sample of rows could hold nothing else (one label: no silhouette)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    counts = Counter(user_text(row) for row in population(rows, config, seed))
    texts = sorted(counts)
    space = Space(centroids=np.zeros((0, WIDTH)), silhouette=None, cut_short=cut_short(texts))
    vectors, weights = space.vectors(texts, stage="source"), np.array([counts[t] for t in texts], dtype=float)
    scored = np.random.default_rng(seed).permutation(len(texts))[:SILHOUETTE_ROWS]
    apart = len(np.unique(vectors.round(4), axis=0))  # texts may differ and embed alike (the embedder ignores case)
    most = min(config.max_clusters, apart - 1)
    candidates = [min(config.clusters, apart)] if config.clusters else list(range(2, most + 1)) or [1]
    best = None
    for k in candidates:
        fitted = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors, sample_weight=weights)
        labels = fitted.labels_[scored]
        score = silhouette_score(vectors[scored], labels) if 1 < len(set(labels)) < len(scored) else None
        if best is None or (score is not None and (best[1] is None or score > best[1])):
            best = (fitted.cluster_centers_, score)
    space.centroids, space.silhouette = best
    if len(texts) > 1:
        projection = PCA(n_components=2, random_state=seed).fit(vectors)
        space.axes, space.center = projection.components_, projection.mean_
    return space


def population(rows: list[dict], config: CoverageConfig, seed: int) -> list[dict]:
    """Production's prompts on the map: all of them, or a seeded `map_rows`."""
    return rows if len(rows) <= config.map_rows else random.Random(seed).sample(rows, config.map_rows)
