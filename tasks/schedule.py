"""When the scheduled deployment re-distils fresh traffic (`redistill deploy`)."""

from pydantic import Field

from tasks.config import PLACE, Config


class ScheduleConfig(Config):
    """The scheduled deployment's timing (an on-demand run ignores it)."""

    cron: str = Field("0 3 * * 1", description="When `distill/scheduled` runs (cron); default Mondays 03:00.",
                      json_schema_extra=PLACE)  # fmt: skip
    timezone: str = Field("UTC", description="The cron's time zone (IANA name: Europe/Berlin, UTC …).",
                          json_schema_extra=PLACE)  # fmt: skip
