"""Serve the distill flow on a weekly cron, and from the Prefect UI with its typed parameter form.

    PREFECT_API_URL=http://127.0.0.1:4200/api python deploy/weekly.py

Each Monday 03:00 UTC it re-distils from the configured log (point `source.path` at the fresh
traffic); the same deployment can be run by hand from the UI, where every DistillConfig field is
a form field with its description. Completed stages are served from cache, so a re-run after a
teacher outage redoes only what failed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from prefect import serve  # noqa: E402

from flows.distill import DistillConfig, distill  # noqa: E402

WEEKLY_CRON = "0 3 * * 1"


def weekly_deployment(config: DistillConfig = DistillConfig()):
    """The weekly re-distillation deployment (not yet registered)."""
    return distill.to_deployment(
        name="weekly",
        cron=WEEKLY_CRON,
        parameters={"config": config.model_dump(mode="json")},
        description="Re-distil the student from last week's traffic.",
        tags=["redistill"],
    )


if __name__ == "__main__":
    serve(weekly_deployment())
