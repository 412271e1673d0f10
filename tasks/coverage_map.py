"""The coverage map: production's prompts embedded (tasks.embed) and clustered (k-means; k by silhouette unless
fixed), with a 2-D projection (PCA). The source stage fits it over the window's prompts, samples by it when asked
(`stratify`), and writes where each prompt landed (schemas.COVERAGE_MAP) for the coverage stage's report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from tasks.config import Config
from tasks.embed import embed
from tasks.stage import user_text


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
    axes: np.ndarray  # (2, d) the projection's principal axes
    center: np.ndarray  # (d,)
    seen: dict[str, np.ndarray] = field(default_factory=dict)  # embeddings by text: each text embedded once

    def vectors(self, rows: list[dict], stage: str | None = None) -> np.ndarray:
        texts = [user_text(row) for row in rows]
        new = sorted({text for text in texts if text not in self.seen})
        self.seen |= dict(zip(new, embed(new, stage=stage), strict=True))
        return np.stack([self.seen[text] for text in texts]) if texts else np.zeros((0, self.center.size))

    def metrics(self) -> dict[str, float]:
        found = {"coverage.clusters": len(self.centroids)}
        return found | ({"coverage.silhouette": self.silhouette} if self.silhouette is not None else {})

    def clusters_of(self, rows: list[dict], stage: str | None = None) -> list[int]:
        return nearest(self.vectors(rows, stage), self.centroids).tolist()

    def map_rows(self, rows: list[dict], part: str) -> list[dict]:
        """COVERAGE_MAP rows: each prompt's cluster and position."""
        vectors = self.vectors(rows)
        points = (vectors - self.center) @ self.axes.T
        return [
            {"id": row["id"], "slice": row["slice"], "part": part, "cluster": int(c), "x": float(x), "y": float(y),
             "prompt": user_text(row)}
            for row, c, (x, y) in zip(rows, nearest(vectors, self.centroids), points, strict=True)
        ]  # fmt: skip


def nearest(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each vector's nearest centroid (Euclidean, as k-means fits them)."""
    if not len(vectors):
        return np.zeros(0, dtype=np.int64)
    return np.argmin(((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(-1), axis=1)


def fit_space(rows: list[dict], config: CoverageConfig, seed: int) -> Space:
    """Cluster `rows` (at most `map_rows` of them, seeded) and fit the 2-D projection."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    space = Space(centroids=np.zeros((0, 384)), silhouette=None, axes=np.zeros((2, 384)), center=np.zeros(384))
    vectors = space.vectors(population(rows, config, seed), stage="source")
    distinct = len(np.unique(vectors.round(4), axis=0))
    candidates = [config.clusters] if config.clusters else range(2, config.max_clusters + 1)
    best = None
    for k in [k for k in candidates if k < distinct] or [1]:
        fitted = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
        score = (silhouette_score(vectors, fitted.labels_, sample_size=min(len(vectors), 2000), random_state=seed)
                 if k > 1 else None)  # fmt: skip
        if best is None or (score is not None and score > best[1]):
            best = (fitted.cluster_centers_, score)
    projection = PCA(n_components=2, random_state=seed).fit(vectors) if distinct > 2 else None
    space.centroids, space.silhouette = best
    if projection is not None:
        space.axes, space.center = projection.components_, projection.mean_
    return space


def population(rows: list[dict], config: CoverageConfig, seed: int) -> list[dict]:
    """Production's prompts on the map: all of them, or a seeded `map_rows`."""
    return rows if len(rows) <= config.map_rows else random.Random(seed).sample(rows, config.map_rows)
