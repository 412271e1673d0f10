"""SemDedup (Abbas et al., 2023): near-duplicates by meaning, after MinHash has taken those by wording.

The texts are embedded (tasks.embed) and clustered with k-means so that only texts of one cluster are compared;
within a cluster, texts are taken best first and one is dropped when its cosine similarity to a text already kept
reaches the threshold. Paraphrases ("What's the capital of France?", "Which city is France's capital?") go;
texts about different things stay, however alike their wording.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.embed import embed

ROWS_PER_CLUSTER = 1000  # pairwise cosine within a cluster: 1000 x 1000 is a few MB


def semantic_duplicates(texts: list[str], threshold: float, seed: int = 0) -> dict[int, tuple[int, float]]:
    """{i: (j, cosine)} for each text i (in best-first order: a lower index is better) dropped for a kept j."""
    from sklearn.cluster import KMeans

    if len(texts) < 2:
        return {}
    vectors = embed(texts, stage="dedup")
    k = min(math.ceil(len(texts) / ROWS_PER_CLUSTER), len(texts))
    labels = KMeans(n_clusters=k, n_init=2, random_state=seed).fit_predict(vectors) if k > 1 else np.zeros(len(texts))
    dropped = {}
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)  # ascending: best first
        kept: list[int] = []
        for i in members.tolist():
            if kept:
                cosines = vectors[kept] @ vectors[i]
                best = int(np.argmax(cosines))
                if cosines[best] >= threshold:
                    dropped[i] = (kept[best], float(cosines[best]))
                    continue
            kept.append(i)
    return dropped
