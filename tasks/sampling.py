"""Sampling by slice: quotas in proportion to the traffic (source's sample, replay's share of the champion's)."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

from tasks.stage import normalize_text


def rank(seed: int, text: str) -> str:
    """A seeded, stable order of prompts by their normalised text."""
    return hashlib.sha256(f"{seed}:{normalize_text(text)}".encode()).hexdigest()


def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` across slices in proportion to `counts` (largest remainder), capped by each count."""
    available = sum(counts.values())
    total = min(total, available)
    if total == 0:
        return {name: 0 for name in counts}
    exact = {name: total * n / available for name, n in counts.items()}
    share = {name: int(x) for name, x in exact.items()}
    by_remainder = sorted(counts, key=lambda name: (exact[name] - share[name], counts[name], name), reverse=True)
    for name in by_remainder[: total - sum(share.values())]:
        share[name] += 1
    return share


def stratified_sample(rows: list[dict], size: int, seed: int) -> list[dict]:
    """`size` rows whose slice mix matches the input's (largest-remainder quotas, seeded draw)."""
    by_slice: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_slice[row["slice"]].append(row)
    quota = allocate({name: len(group) for name, group in by_slice.items()}, size)
    rng = random.Random(seed)
    sample = []
    for name in sorted(by_slice):
        sample += rng.sample(by_slice[name], quota[name])
    return sample


def cluster_quotas(counts: dict[int, int], total: int, floor: int) -> dict[int, int]:
    """Split `total` across clusters: each first gets up to `floor` (a rare intent is not starved), the rest goes
    in proportion to what each has left (largest remainder); capped by each count."""
    floors = {c: min(floor, n) for c, n in counts.items()}
    if sum(floors.values()) >= total:  # too few to give every cluster its floor: the floors shared out
        return allocate(floors, total)
    rest = allocate({c: n - floors[c] for c, n in counts.items()}, total - sum(floors.values()))
    return {c: floors[c] + rest[c] for c in counts}


def cluster_stratified_sample(rows: list[dict], clusters: list[int], size: int, seed: int, floor: int) -> list[dict]:
    """`size` rows, slices in proportion to the input, and within each slice its clusters by `cluster_quotas`."""
    by_slice: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row, cluster in zip(rows, clusters, strict=True):
        by_slice[row["slice"]][cluster].append(row)
    quota = allocate({name: sum(map(len, groups.values())) for name, groups in by_slice.items()}, size)
    rng = random.Random(seed)
    sample = []
    for name in sorted(by_slice):
        groups = by_slice[name]
        within = cluster_quotas({c: len(group) for c, group in groups.items()}, quota[name], floor)
        for cluster in sorted(groups):
            sample += rng.sample(groups[cluster], within[cluster])
    return sample
