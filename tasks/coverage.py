"""Coverage: where production's prompts are, and whether the training sample is there too, before any teacher call.

The source stage maps production's prompts (tasks.coverage_map: embedded, clustered, projected), samples by the
map when asked (`stratify`) and writes where each prompt landed (schemas.COVERAGE_MAP). This stage reads it: per
slice and per cluster, the share of production against the share of the training sample. A cluster whose sampled
share is under `thin_ratio` of its production share is thin, and named with three of its prompts, redacted here.
A 2-D projection shows the clusters with the sampled prompts marked.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from prefect import task

from tasks import storage
from tasks.cache import retry_if_transient, stage_uri
from tasks.coverage_map import CoverageConfig
from tasks.embed import EMBEDDER
from tasks.pii import RedactConfig
from tasks.pii.redactor import Redactor
from tasks.plots import figure, png
from tasks.refs import DatasetRef
from tasks.stage import StageReport, StageResult, Timer, read_table

EXAMPLES = 3  # prompts quoted per thin cluster


class Coverage(StageResult):
    plot: str  # URI of the PNG


def share_rows(rows: list[dict], by: str, thin_ratio: float) -> list[dict]:
    """Per slice or cluster (`by`): its share of production and of the training sample, and whether it is thin."""
    production = Counter(row[by] for row in rows if row["part"] == "production")
    sampled = Counter(row[by] for row in rows if row["part"] == "train")
    total, drawn = sum(production.values()), sum(sampled.values())
    out = []
    for key in sorted(production | sampled):
        share, got = production[key] / max(total, 1), sampled[key] / max(drawn, 1)
        out.append({by: key, "production": production[key], "production_share": round(share, 4),
                    "sampled": sampled[key], "sampled_share": round(got, 4),
                    "thin": got < thin_ratio * share})  # fmt: skip
    return out


def cluster_slices(rows: list[dict]) -> dict[int, str]:
    """Each cluster's commonest slice in production (what it mostly is)."""
    by_cluster: dict[int, Counter] = {}
    for row in rows:
        if row["part"] == "production":
            by_cluster.setdefault(row["cluster"], Counter())[row["slice"]] += 1
    return {cluster: counts.most_common(1)[0][0] for cluster, counts in by_cluster.items()}


def examples(rows: list[dict], cluster: int, seed: int) -> list[str]:
    """Up to three distinct production prompts of a cluster, seeded."""
    texts = sorted({row["prompt"] for row in rows if row["cluster"] == cluster and row["part"] == "production"})
    return random.Random(seed).sample(texts, min(EXAMPLES, len(texts)))


def thin_notes(thin: list[dict], shown: list[list[str]], mostly: dict[int, str], redact: RedactConfig) -> list[str]:
    """One line per thin cluster: its shares, and its examples redacted (most were never sampled, so never
    redacted before)."""
    texts = [text for texts in shown for text in texts]
    redacted = iter(text for text, _ in Redactor(redact).redact(texts)) if texts else iter(())
    notes = []
    for row, texts in zip(thin, shown, strict=True):
        quoted = "; ".join(repr(next(redacted)[:100]) for _ in texts)
        notes.append(f"cluster {row['cluster']} (mostly {mostly.get(row['cluster'], '-')}) is thin: "
                     f"{row['production_share']:.0%} of production, {row['sampled_share']:.0%} of the sample; "
                     f"e.g. {quoted}")  # fmt: skip
    return notes


def plot(rows: list[dict]) -> bytes:
    """The map: production's prompts coloured by cluster, the training sample ringed."""
    drawn, ax = figure(figsize=(7, 6))
    production = [row for row in rows if row["part"] == "production"]
    train = [row for row in rows if row["part"] == "train"]
    ax.scatter([r["x"] for r in production], [r["y"] for r in production], c=[r["cluster"] for r in production],
               cmap="tab20", s=12, alpha=0.6, label="production")  # fmt: skip
    ax.scatter([r["x"] for r in train], [r["y"] for r in train], facecolors="none", edgecolors="black", s=40,
               linewidths=0.8, label="sampled for training")  # fmt: skip
    for cluster in sorted({r["cluster"] for r in production}):
        at = [(r["x"], r["y"]) for r in production if r["cluster"] == cluster]
        ax.annotate(str(cluster), np.mean(at, axis=0), fontsize=11, weight="bold")
    ax.set_title(f"production prompts by cluster ({EMBEDDER}, PCA)")
    ax.legend(loc="best")
    return png(drawn)


def coverage(config: CoverageConfig, redact: RedactConfig, coverage_map: DatasetRef, out_uri: str) -> Coverage:
    """Shares per slice and cluster, the thin clusters named with redacted examples, and the map."""
    with Timer() as timer:
        rows = read_table(coverage_map).drop_columns(["embedding"]).to_pylist()
        slices = share_rows(rows, "slice", config.thin_ratio)
        clusters = share_rows(rows, "cluster", config.thin_ratio)
        mostly = cluster_slices(rows)
        thin = [row for row in clusters if row["thin"]]
        notes = thin_notes(thin, [examples(rows, row["cluster"], seed=row["cluster"]) for row in thin], mostly, redact)
        plot_uri = storage.join(out_uri, "coverage.png")
        storage.write_bytes(plot(rows), plot_uri)
    produced = sum(row["production"] for row in clusters)
    report = StageReport(
        stage="coverage",
        rows_in=produced,
        rows_out=sum(row["sampled"] for row in clusters),
        metrics={
            "clusters": len(clusters),
            "thin_clusters": len(thin),
            **{f"production_share.cluster_{r['cluster']}": r["production_share"] for r in clusters},
            **{f"sampled_share.cluster_{r['cluster']}": r["sampled_share"] for r in clusters},
        },  # fmt: skip
        seconds=timer.seconds,
        notes=notes or [f"every cluster has at least {config.thin_ratio:.0%} of its production share in the sample"],
        tables={"slices": slices, "clusters": [row | {"mostly": mostly.get(row["cluster"])} for row in clusters]},
    )
    return Coverage(plot=plot_uri, report=report)


# not cached: seconds of work, and a cached result would name a PNG a cleaned work dir no longer has
@task(name="map_coverage", retries=2, retry_delay_seconds=15, retry_condition_fn=retry_if_transient)
def map_coverage(config: CoverageConfig, redact: RedactConfig, coverage_map: DatasetRef, work_dir: str) -> Coverage:
    """Production against the training sample, per slice and cluster, before any teacher call."""
    return coverage(config, redact, coverage_map, stage_uri(work_dir, "coverage", config, redact, coverage_map))
