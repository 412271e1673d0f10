"""Drift: how this run's traffic differs from the champion's training prompts, before any teacher call.

Compared: the slice mix then and now, slices that are new, prompt lengths in characters, and the share of
this run's prompts with no near neighbour (MinHash) among the champion's. Replayed prompts are left out of
"now": they are the champion's traffic. Only counts and shares reach the report and the plot, never a
prompt's text.
"""

from __future__ import annotations

from collections import Counter

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import retry_if_transient
from tasks.config import Config
from tasks.minhash import Banding, near_neighbour_of
from tasks.plots import figure, png
from tasks.refs import DatasetRef
from tasks.stage import StageReport, StageResult, Timer, read_dataset, user_text


class DriftConfig(Config):
    """How the drift report tells a new prompt from an old one."""

    near_threshold: float = Field(
        0.5, gt=0, le=1, description="Jaccard similarity of word shingles at which a prompt has a near neighbour "
        "among the champion's.",
    )  # fmt: skip
    shingle_words: int = Field(3, ge=1, description="Words per shingle (prompts are short).")


class Drift(StageResult):
    plot: str  # URI of the PNG


def shares(rows: list[dict]) -> dict[str, float]:
    counts = Counter(row["slice"] for row in rows)
    return {name: n / max(len(rows), 1) for name, n in sorted(counts.items())}


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(int(q * len(ordered)), len(ordered) - 1)]) if ordered else 0.0


def without_neighbour(now: list[str], then: list[str], config: DriftConfig) -> float:
    """The share of `now` with no text in `then` at least `near_threshold` alike."""
    banding = Banding.for_threshold(config.near_threshold, config.shingle_words)
    alone = near_neighbour_of(now, then, config.near_threshold, banding) < 0
    return float(alone.sum()) / max(len(now), 1)


def plot(then: list[dict], now: list[dict], champion: str) -> bytes:
    before, after = shares(then), shares(now)
    names = sorted(set(before) | set(after))
    drawn, (mix, lengths) = figure(ncols=2, figsize=(11, 4))
    x = range(len(names))
    mix.bar([i - 0.2 for i in x], [before.get(n, 0) for n in names], 0.4, label=f"champion (v{champion})")
    mix.bar([i + 0.2 for i in x], [after.get(n, 0) for n in names], 0.4, label="this run")
    mix.set_xticks(list(x), names, rotation=30, ha="right")
    mix.set_ylabel("share of prompts")
    mix.set_title("slice mix")
    mix.legend()
    lengths.hist([len(r["prompt"]) for r in then], bins=30, alpha=0.6, density=True, label="champion")
    lengths.hist([len(r["prompt"]) for r in now], bins=30, alpha=0.6, density=True, label="this run")
    lengths.set_xlabel("prompt length (characters)")
    lengths.set_title("prompt lengths")
    lengths.legend()
    return png(drawn)


def drift(config: DriftConfig, prompts: DatasetRef, champion_prompts: str, champion: str, out_uri: str) -> Drift:
    with Timer() as timer:
        now = [row for row in read_dataset(prompts) if row.get("origin") != "replay"]
        then = [row for row in storage.read_table(champion_prompts).to_pylist() if row.get("origin") != "synthetic"]
        before, after = shares(then), shares(now)
        new_slices = sorted(set(after) - set(before))
        alone = without_neighbour([user_text(r) for r in now], [user_text(r) for r in then], config)
        lengths_now, lengths_then = [len(r["prompt"]) for r in now], [len(r["prompt"]) for r in then]
        image = plot(then, now, champion)
    plot_uri = storage.join(out_uri, "drift.png")
    storage.write_bytes(image, plot_uri)
    table = ["| slice | champion | this run | change |", "|---|---:|---:|---:|"]
    for name in sorted(set(before) | set(after)):
        then_share, now_share = before.get(name, 0), after.get(name, 0)
        table.append(f"| {name} | {then_share:.2f} | {now_share:.2f} | {now_share - then_share:+.2f} |")
    report = StageReport(
        stage="drift",
        rows_in=len(now),
        rows_out=len(now),
        metrics={
            "champion_prompts": len(then),
            "new_slices": len(new_slices),
            "without_near_neighbour": alone,
            "length_p50_now": quantile(lengths_now, 0.5),
            "length_p50_champion": quantile(lengths_then, 0.5),
            "length_p90_now": quantile(lengths_now, 0.9),
            "length_p90_champion": quantile(lengths_then, 0.9),
            **{f"slice_share_now.{k}": v for k, v in after.items()},
            **{f"slice_share_champion.{k}": v for k, v in before.items()},
        },
        seconds=timer.seconds,
        notes=[f"against the champion, version {champion}: {len(then)} training prompts"]
        + ([f"new slices: {', '.join(new_slices)}"] if new_slices else [])
        + [f"{alone:.0%} of this run's prompts have no near neighbour among the champion's"],
        details="\n".join(table),
    )
    return Drift(plot=plot_uri, report=report)


@task(name="drift_report", retries=2, retry_delay_seconds=15, retry_condition_fn=retry_if_transient)
def drift_report(
    config: DriftConfig, prompts: DatasetRef, champion_prompts: str, champion: str, work_dir: str
) -> Drift:
    """This run's traffic against the champion's training prompts (not cached: it is cheap, and the champion
    changes without the inputs changing)."""
    return drift(config, prompts, champion_prompts, champion, storage.join(work_dir, "drift", prompts.digest[:16]))
