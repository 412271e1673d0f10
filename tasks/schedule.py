"""When the scheduled deployment re-distils fresh traffic (`redistill deploy`), and which rows it reads."""

from pydantic import Field, ValidationError, model_validator

from tasks.config import PLACE, Config


class ScheduleConfig(Config):
    """The scheduled deployment's timing and its window of fresh traffic (an on-demand run ignores the timing)."""

    cron: str = Field("0 3 * * 1", description="When `distill/scheduled` runs (cron); default Mondays 03:00.",
                      json_schema_extra=PLACE)  # fmt: skip
    timezone: str = Field("UTC", description="The cron's time zone (IANA name: Europe/Berlin, UTC …).",
                          json_schema_extra=PLACE)  # fmt: skip
    fresh_traffic: bool = Field(
        False,
        description="Read only rows newer than the watermark of the last completed run (a Prefect Variable on the "
        "server) and older than this run's start less `lateness_minutes`; a completed run moves the watermark. "
        "`redistill deploy` turns it on for distill/scheduled.",
    )
    lateness_minutes: int = Field(
        60,
        ge=0,
        description="How late rows may land (an hourly partition uploaded after its hour): the window ends this "
        "long before the run's start, so late rows are read by the next run, never skipped.",
    )
    watermark: str | None = Field(
        None,
        description="Name of the Prefect Variable holding the watermark; none: one per deployment "
        "(`redistill-watermark-<deployment>`).",
        json_schema_extra=PLACE,
    )

    @model_validator(mode="after")
    def _a_schedule_the_server_takes(self):
        """A cron or time zone the server would refuse is said when the config is read, not at deploy time."""
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=self.cron, timezone=self.timezone)
        except ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self
