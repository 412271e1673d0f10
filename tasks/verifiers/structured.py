"""The json verifier: the answer holds a JSON value that validates against the slice's JSON Schema.

The JSON is found in a fenced block (```json … ```), else as the first `{…}` or `[…]` that parses; what the
training row keeps is that JSON alone, re-serialised, not the prose around it. With a reference, the value
must also equal the reference's.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from tasks.config import Config
from tasks.verifiers.base import Verdict

_FENCED = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> tuple[Any, str] | None:
    """The first JSON object or array in `text` (a fenced block first) and its text, or None."""
    for block in _FENCED.findall(text):
        try:
            return json.loads(block), block.strip()
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"[\[{]", text)):
        try:
            value, end = decoder.raw_decode(text, start)
            return value, text[start:end]
        except json.JSONDecodeError:
            continue
    return None


class Json(Config):
    """Right when the answer holds JSON valid under `json_schema` (and equal to the reference, when there is one)."""

    kind: Literal["json"] = "json"
    needs_reference: ClassVar[bool] = False
    json_schema: dict = Field(default={}, description="The JSON Schema the answer's JSON must satisfy ({}: any JSON).")

    @field_validator("json_schema")
    @classmethod
    def _a_valid_schema(cls, schema: dict) -> dict:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as bad:
            raise ValueError(f"not a valid JSON Schema: {bad.message}") from None
        return schema

    def verify(self, answer: str, row: dict) -> Verdict:
        from jsonschema import Draft202012Validator

        found = extract_json(answer)
        if found is None:
            return Verdict.of(False, "no JSON found")
        value, _ = found
        errors = sorted(Draft202012Validator(self.json_schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "the top level"
            return Verdict.of(False, f"schema: {errors[0].message[:150]} at {where}")
        if row.get("reference"):
            try:
                if json.loads(row["reference"]) != value:
                    return Verdict.of(False, "valid, but not the reference's value")
            except json.JSONDecodeError:
                return Verdict.of(False, "reference is not JSON")
        canonical = json.dumps(value, ensure_ascii=False)
        return Verdict(ok=True, score=1.0, reason="valid JSON", extracted=canonical)
