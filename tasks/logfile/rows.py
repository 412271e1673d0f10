"""Which column of a log holds what, and the checks that make a row a prompt or a quarantined row.

Every reason names the row's field and what is wrong with it, never the field's content: reasons
are logged, shown in the Prefect UI and kept in MLflow, and the row has not been redacted yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from tasks.config import Config
from tasks.logfile.read import Rejected


class Columns(Config):
    """The log's column for each thing redistill reads (defaults: the names `redistill demo-data` writes)."""

    prompt: str = Field("prompt", description="The user's text.")
    slice: str = Field("slice", description="The traffic slice (task, product, route) the prompt belongs to.")
    id: str = Field("id", description="The request's id (optional; row-<n> when absent).")
    timestamp: str = Field("timestamp", description="When it was asked: ISO 8601 or epoch seconds (optional).")
    reference: str = Field("reference", description="The checkable answer (optional).")

    def must_exist(self) -> dict[str, str]:
        """{field: column} for the columns some row must have: the prompt, the slice, and any column renamed
        from its default (a name the user wrote is a name the log should have)."""
        fields = type(self).model_fields
        renamed = {name: getattr(self, name) for name in fields if getattr(self, name) != fields[name].default}
        return {"prompt": self.prompt, "slice": self.slice} | renamed


def _text(record: dict, column: str, required: bool, numbers_ok: bool = False) -> str | None:
    """A field as stripped text; numbers are accepted where a log may hold them (ids, references)."""
    value = record.get(column)
    if value is None:
        if required:
            raise Rejected(column, "missing", f"field '{column}' is missing")
        return None
    if isinstance(value, str):
        text = value.strip()
    elif numbers_ok and isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        raise Rejected(column, "wrong_type", f"field '{column}' must be text, got {type(value).__name__}")
    if required and not text:
        raise Rejected(column, "empty", f"field '{column}' is empty")
    return text or None


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(record: dict, column: str) -> str | None:
    """ISO 8601 UTC from an ISO 8601 text or epoch seconds (milliseconds when that large)."""
    value = record.get(column)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
            return utc(datetime.fromisoformat(value.strip())).isoformat()
        seconds = float(value)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC).isoformat()
    except (ValueError, TypeError, OverflowError, OSError):
        raise Rejected(column, "bad_timestamp", f"field '{column}' is not a time (ISO 8601 or epoch seconds)") from None


def parse_row(number: int, record: dict | Rejected, columns: Columns, max_prompt_chars: int) -> dict:
    """A validated prompt row (schemas.PROMPTS), or raise Rejected naming the field."""
    if isinstance(record, Rejected):
        raise record
    if not isinstance(record, dict):
        raise Rejected(None, "not_object", f"row is a {type(record).__name__}, not an object")
    prompt = _text(record, columns.prompt, required=True)
    if len(prompt) > max_prompt_chars:
        raise Rejected(
            columns.prompt,
            "too_long",
            f"field '{columns.prompt}' has {len(prompt)} characters, over source.max_prompt_chars {max_prompt_chars}",
        )
    return {
        "id": _text(record, columns.id, required=False, numbers_ok=True) or f"row-{number}",
        "timestamp": _time(record, columns.timestamp),
        "slice": _text(record, columns.slice, required=True),
        "prompt": prompt,
        "reference": _text(record, columns.reference, required=False, numbers_ok=True),
    }
