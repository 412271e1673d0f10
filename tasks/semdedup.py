"""SemDedup (Abbas et al., 2023): near-duplicates by meaning, after MinHash has taken those by wording.

The texts are embedded (tasks.embed) and clustered with k-means so that only texts of one cluster are compared;
within a cluster, texts are taken best first and one is dropped when its cosine similarity to a text already kept
reaches the threshold. Paraphrases ("What's the capital of France?", "Which city is France's capital?") go;
texts about different things stay, however alike their wording. A text may come in parts (a question and its
answer), each embedded on its own and each required to be alike: the embedder reads only its first MAX_TOKENS
tokens, so one long question would otherwise make every answer to it look the same.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.embed import embed

ROWS_PER_CLUSTER = 1000  # texts compared pairwise within a cluster, on average


def semantic_duplicates(parts: list[list[str]], threshold: float, seed: int = 0) -> dict[int, tuple[int, float]]:
    """{i: (j, cosine)} for each text i dropped for a kept j; `parts` holds each part's texts, in best-first order
    (a lower index is better); the cosine given is the lowest of the parts'."""
    from sklearn.cluster import KMeans

    count = len(parts[0])
    if count < 2:
        return {}
    vectors = [embed(texts, stage="dedup") for texts in parts]
    joined = np.concatenate(vectors, axis=1) / math.sqrt(len(vectors))
    k = math.ceil(count / ROWS_PER_CLUSTER)
    labels = KMeans(n_clusters=k, n_init=2, random_state=seed).fit_predict(joined) if k > 1 else np.zeros(count)
    dropped = {}
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)  # ascending: best first
        kept = np.empty(len(members), dtype=np.int64)  # the rows kept so far, in kept[:n]
        n = 0
        for i in members.tolist():
            if n:
                alike = np.min([v[kept[:n]] @ v[i] for v in vectors], axis=0)  # every part must be alike
                best = int(np.argmax(alike))
                if alike[best] >= threshold:
                    dropped[i] = (int(kept[best]), float(alike[best]))
                    continue
            kept[n], n = i, n + 1
    return dropped
