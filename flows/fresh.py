"""Scheduled re-distillation of fresh traffic: the window of rows a run reads, and its watermark.

A run with `schedule.fresh_traffic` reads rows from the watermark of the last completed run of its
deployment up to its own start (rows logged later wait for the next run). The watermark is a Prefect
Variable on the server, so every worker sees the same one; only a run that completes the whole flow
moves it: a run that found too little new traffic, or failed, leaves its rows for the next.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from tasks.schedule import ScheduleConfig
from tasks.source import SourceConfig


class FreshWindow(BaseModel):
    variable: str
    since: datetime | None  # the watermark; none before the first completed run
    until: datetime  # this run's start, less the lateness allowed

    def source(self, config: SourceConfig) -> SourceConfig:
        """The source section narrowed to the window (a user's own since/until narrow it further); a week without
        a new prompt is a quiet week that ends completed, never a failure."""
        since = max((t for t in (config.since, self.since) if t), default=None, key=_utc)
        until = min((t for t in (config.until, self.until) if t), key=_utc)
        least = max(config.min_new_prompts, 1)
        return config.model_copy(update={"since": since, "until": until, "min_new_prompts": least})


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def variable_name(schedule: ScheduleConfig) -> str:
    """The watermark's Variable: the configured name, or one per deployment (Prefect allows [a-z0-9_-])."""
    from prefect.runtime import deployment

    name = schedule.watermark or f"redistill-watermark-{deployment.name or 'adhoc'}"
    return re.sub(r"[^a-z0-9_-]", "-", name.lower())


def fresh_window(schedule: ScheduleConfig) -> FreshWindow:
    from prefect.runtime import flow_run
    from prefect.variables import Variable

    name = variable_name(schedule)
    stored = Variable.get(name, default=None)
    start = _utc(flow_run.scheduled_start_time or datetime.now(UTC))
    until = start - timedelta(minutes=schedule.lateness_minutes)  # late partitions: read next time, not skipped
    return FreshWindow(variable=name, since=datetime.fromisoformat(stored) if stored else None, until=until)


def advance(variable: str, until: datetime) -> None:
    """After a completed run: the next run reads from where this one's window ended. Never backwards: a run
    that finishes after a later one leaves the later watermark."""
    from prefect.variables import Variable

    stored = Variable.get(variable, default=None)
    if stored is None or datetime.fromisoformat(stored) < _utc(until):
        Variable.set(variable, _utc(until).isoformat(), overwrite=True)
