"""A scheduled run's window: from the watermark to its start, narrowed further by the user's own since/until."""

from datetime import UTC, datetime

from flows.fresh import FreshWindow, variable_name
from tasks.schedule import ScheduleConfig
from tasks.source import SourceConfig


def test_the_window_runs_from_the_watermark_to_the_start_and_a_users_bounds_narrow_it():
    window = FreshWindow(
        variable="w", since=datetime(2026, 11, 9, tzinfo=UTC), until=datetime(2026, 11, 30, 3, tzinfo=UTC)
    )
    plain = window.source(SourceConfig())
    assert (plain.since, plain.until) == (window.since, window.until)
    narrower = window.source(SourceConfig(since=datetime(2026, 11, 12), until=datetime(2026, 11, 16)))  # naive: UTC
    assert (narrower.since, narrower.until) == (datetime(2026, 11, 12), datetime(2026, 11, 16))
    wider = window.source(SourceConfig(since=datetime(2026, 1, 1), until=datetime(2027, 1, 1)))
    assert (wider.since, wider.until) == (window.since, window.until)
    first_run = FreshWindow(variable="w", since=None, until=window.until).source(SourceConfig())
    assert first_run.since is None and first_run.until == window.until
    # a scheduled week without a new prompt ends completed (at least 1 needed), whatever the default says
    assert plain.min_new_prompts == 1 and window.source(SourceConfig(min_new_prompts=20)).min_new_prompts == 20


def test_the_watermark_is_one_variable_per_deployment_or_the_named_one():
    assert variable_name(ScheduleConfig()) == "redistill-watermark-adhoc"  # outside a deployment
    assert variable_name(ScheduleConfig(watermark="Support Bot/EU")) == "support-bot-eu"


def test_the_watermark_only_moves_forward(prefect_server):
    from prefect.variables import Variable

    from flows.fresh import advance

    advance("test-watermark-order", datetime(2026, 11, 16))
    advance("test-watermark-order", datetime(2026, 11, 9))  # an older run that finished late
    assert Variable.get("test-watermark-order") == "2026-11-16T00:00:00+00:00"
    advance("test-watermark-order", datetime(2026, 11, 23, tzinfo=UTC))
    assert Variable.get("test-watermark-order") == "2026-11-23T00:00:00+00:00"


def test_a_cron_or_time_zone_the_server_would_refuse_is_a_config_error():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match='Invalid cron string: "0 3 \\* \\*x 1"'):
        ScheduleConfig(cron="0 3 * *x 1")
    with pytest.raises(ValidationError, match='Invalid timezone: "Mars/Olympus"'):
        ScheduleConfig(timezone="Mars/Olympus")
    assert ScheduleConfig(cron="30 2 * * 0", timezone="Europe/Berlin").timezone == "Europe/Berlin"
