"""Which column of a log holds what, and the checks that make a row a prompt or a quarantined row.

Every reason names the row's field and what is wrong with it, never the field's content: reasons
are logged, shown in the Prefect UI and kept in MLflow, and the row has not been redacted yet.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from pydantic import Field

from tasks.config import Config
from tasks.logfile.read import Rejected
from tasks.stage import render_turns

ROLES = ("system", "user", "assistant")


class Columns(Config):
    """The log's column for each thing redistill reads (defaults: the names `redistill demo-data` writes)."""

    prompt: str = Field("prompt", description="The user's text (or use `messages`).")
    messages: str = Field(
        "messages",
        description="A chat request: OpenAI-style [{role, content}] turns ending with the user's (JSON text in CSV).",
    )
    slice: str = Field("slice", description="The traffic slice (task, product, route) the prompt belongs to.")
    id: str = Field("id", description="The request's id (optional; row-<n> when absent).")
    timestamp: str = Field("timestamp", description="When it was asked: ISO 8601 or epoch seconds (optional).")
    reference: str = Field("reference", description="The checkable answer (optional).")
    response: str = Field(
        "response",
        description="The answer production gave: the current model's or the teacher's (optional; held-out rows "
        "with one get the shadow report, the student's agreement with it).",
    )

    def missing_from(self, seen: set[str]) -> dict[str, str]:
        """{field: column} for the columns some row must have and none of `seen` is: the prompt (or chat
        messages), the slice, and any column renamed from its default (a name the user wrote is one the log
        should have)."""
        fields = type(self).model_fields
        needed = {name: getattr(self, name) for name in fields if getattr(self, name) != fields[name].default}
        needed["slice"] = self.slice
        if self.messages not in seen:
            needed["prompt"] = self.prompt
        return {name: column for name, column in sorted(needed.items()) if column not in seen}


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
    """ISO 8601 UTC from a time (a Parquet timestamp or date), an ISO 8601 text, or an epoch number (seconds,
    or milli-, micro- or nanoseconds when that large)."""
    value = record.get(column)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            return utc(value).isoformat()
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()
        if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
            return utc(datetime.fromisoformat(value.strip())).isoformat()
        seconds = float(value)
        while abs(seconds) > 1e11:  # ms, µs, ns since the epoch
            seconds /= 1000
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (ValueError, TypeError, OverflowError, OSError):
        raise Rejected(column, "bad_timestamp", f"field '{column}' is not a time (ISO 8601 or epoch seconds)") from None


def _content(turn) -> str | None:
    """A turn's text: a string, or OpenAI's list of content parts (their text parts joined)."""
    content = turn.get("content") if isinstance(turn, dict) else None
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(p for p in parts if isinstance(p, str)) if len(parts) == len(content) else None
    return content.strip() if isinstance(content, str) and content.strip() else None


def _messages(record: dict, column: str) -> list[dict] | None:
    """A chat row's turns, checked: {role, content} each, a system turn only first, the user's turn last."""
    value = record.get(column)
    if value is None:
        return None
    if isinstance(value, str):  # a CSV cell holds the JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Rejected(column, "bad_messages", f"field '{column}' is not JSON") from None
    if not isinstance(value, list) or not value:
        raise Rejected(column, "bad_messages", f"field '{column}' must be a non-empty list of {{role, content}}")
    turns = []
    for i, turn in enumerate(value, start=1):
        role, content = turn.get("role") if isinstance(turn, dict) else None, _content(turn)
        if role not in ROLES or content is None or (role == "system" and i > 1):
            reason = f"field '{column}' turn {i} is not {{role: system (first only) | user | assistant, content: text}}"
            raise Rejected(column, "bad_messages", reason)
        turns.append({"role": role, "content": content})
    if turns[-1]["role"] != "user":
        raise Rejected(
            column, "bad_messages", f"field '{column}' must end with the user's turn, not {turns[-1]['role']}"
        )
    return turns


def _response(value) -> str | None:
    """Production's answer as text: a string, a number, or an OpenAI message or its content parts; anything else
    (an HTTP response object, a status code's bool) is no answer, and the row is still a prompt (source counts
    them: `responses_unreadable`)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return _content(value)
    if isinstance(value, list):
        return _content({"content": value})
    return None


def prompt_and_messages(record: dict, columns: Columns) -> tuple[str, list[dict] | None]:
    """The row's prompt (a chat row's `messages` rendered as turns, else its prompt column) and its messages;
    raises Rejected naming the field at fault."""
    messages = _messages(record, columns.messages)
    return (render_turns(messages) if messages else _text(record, columns.prompt, required=True)), messages


def parse_row(
    number: int, record: dict | Rejected, columns: Columns, max_prompt_chars: int, file: str | None = None
) -> dict:
    """A validated prompt row (schemas.PROMPTS), or raise Rejected naming the field. A row without an id gets
    its place as one (`row-5`, or `<file>:row-5` in a log of several files)."""
    if isinstance(record, Rejected):
        raise record
    if not isinstance(record, dict):
        raise Rejected(None, "not_object", f"row is a {type(record).__name__}, not an object")
    prompt, messages = prompt_and_messages(record, columns)
    if len(prompt) > max_prompt_chars:
        field = columns.messages if messages else columns.prompt
        reason = f"field '{field}' has {len(prompt)} characters, over source.max_prompt_chars {max_prompt_chars}"
        raise Rejected(field, "too_long", reason)
    return {
        "id": _text(record, columns.id, required=False, numbers_ok=True) or f"{file + ':' if file else ''}row-{number}",
        "timestamp": _time(record, columns.timestamp),
        "slice": _text(record, columns.slice, required=True),
        "prompt": prompt,
        "reference": _text(record, columns.reference, required=False, numbers_ok=True),
        "messages": messages,
        "response": _response(record.get(columns.response)),
    }
