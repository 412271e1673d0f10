"""Replay: prompts the champion was trained on, added to this run's training prompts so the student does not
forget what it learnt while it learns this week's traffic.

They are the champion's redacted training prompts (its own replays too), so the teacher's answers to them
are in the request store already: replaying costs no teacher request. None is one of this run's held-out
prompts or one of its new prompts, and none comes twice.
"""

from __future__ import annotations

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.refs import DatasetRef
from tasks.sampling import stratified_sample
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import StageReport, StageResult, Timer, normalize_text, read_dataset, write_dataset


class ReplayConfig(Config):
    """How much of the champion's training traffic comes back."""

    share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Prompts the champion was trained on, added as a share of this run's new training prompts "
        "(0.25: one for every four); their teacher answers come from the request store. 0: none.",
    )
    seed: int = Field(0, description="Seed for the draw.")


class Replayed(StageResult):
    train_prompts: DatasetRef


def replay_rows(new: list[dict], champion: list[dict], held_out: list[dict], config: ReplayConfig) -> list[dict]:
    """`share` x len(new) of the champion's prompts, stratified by slice, none held out, new, repeated or synthetic
    (a run writes its own where traffic is thin, within its own cap)."""
    taken = {normalize_text(row["prompt"]) for row in new + held_out}
    distinct: dict[str, dict] = {}
    for row in champion:
        if (key := normalize_text(row["prompt"])) not in taken and row.get("origin") != "synthetic":
            distinct.setdefault(key, row)
    chosen = stratified_sample(list(distinct.values()), round(config.share * len(new)), config.seed)
    return [row | {"origin": "replay"} for row in chosen]


def replay(config: ReplayConfig, prompts: DatasetRef, held_out: DatasetRef, champion: str, out_uri: str) -> Replayed:
    with Timer() as timer:
        new = read_dataset(prompts)
        replayed = replay_rows(new, storage.read_table(champion).to_pylist(), read_dataset(held_out), config)
    report = StageReport(
        stage="replay",
        rows_in=len(new),
        rows_out=len(new) + len(replayed),
        metrics={"new_prompts": len(new), "replayed_prompts": len(replayed)},
        seconds=timer.seconds,
    )
    rows = new + replayed
    return Replayed(
        train_prompts=write_dataset(rows, storage.join(out_uri, "train_prompts.parquet"), REDACTED_PROMPTS),
        report=report,
    )


@task(name="replay_prompts", **STAGE_TASK)
def replay_prompts(
    config: ReplayConfig, prompts: DatasetRef, held_out: DatasetRef, champion: str, work_dir: str
) -> Replayed:
    """This run's training prompts plus a share of the champion's (`champion`: the URI of its training prompts,
    a stage folder named by content)."""
    return replay(
        config, prompts, held_out, champion, stage_uri(work_dir, "replay", config, prompts, held_out, champion)
    )
