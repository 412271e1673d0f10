"""Each malformed kind, in each format where it can occur: quarantined with its own reason and field while
the rest is read; reasons name where, never what."""

import codecs
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.logfile.read import Rejected, read_log
from tasks.logfile.rows import Columns, parse_row

SECRET = "Ingrid Solberg, +47 912 34 567"  # stands for any content: it must never appear in a reason


def _outcomes(path) -> list[tuple[int, str]]:
    """(row, kind) per row: 'ok', 'blank', or the kind of rejection."""
    out = []
    for record in read_log(str(path)):
        if record.fields is None:
            out.append((record.row, "blank"))
            continue
        try:
            parse_row(record.row, record.fields, Columns(), max_prompt_chars=200)
            out.append((record.row, "ok"))
        except Rejected as e:
            assert SECRET not in e.reason and "Ingrid" not in e.reason, e.reason
            out.append((record.row, e.kind))
    return out


def test_jsonl_every_kind_of_bad_row(tmp_path):
    good = {"id": "1", "slice": "s", "prompt": f"Hi, {SECRET}. What is 2 + 2?", "timestamp": "2026-11-20T10:00:00Z"}
    lines = [
        json.dumps(good).encode(),
        b"",  # blank: counted, not quarantined
        b'{"slice": "s", "prompt": "' + SECRET.encode() + b' caf\xe9"}',  # not UTF-8
        ('{"slice": "s", "prompt": "' + SECRET + '"').encode(),  # not JSON
        json.dumps([SECRET]).encode(),  # not an object
        json.dumps({"slice": "s"}).encode(),  # missing
        json.dumps({"slice": "s", "prompt": "   "}).encode(),  # empty
        json.dumps({"slice": "s", "prompt": 42}).encode(),  # wrong type
        json.dumps({"slice": "s", "prompt": "x" * 201}).encode(),  # too long
        json.dumps({"slice": "s", "prompt": SECRET, "timestamp": f"at {SECRET}"}).encode(),  # bad time
        json.dumps({"slice": "s", "prompt": "When?", "timestamp": 1764000000}).encode(),  # epoch seconds: fine
    ]
    (tmp_path / "log.jsonl").write_bytes(codecs.BOM_UTF8 + b"\n".join(lines) + b"\n")
    assert _outcomes(tmp_path / "log.jsonl") == [
        (1, "ok"), (2, "blank"), (3, "invalid_utf8"), (4, "bad_json"), (5, "not_object"), (6, "missing"),
        (7, "empty"), (8, "wrong_type"), (9, "too_long"), (10, "bad_timestamp"), (11, "ok"),
    ]  # fmt: skip


def test_csv_bad_bytes_in_one_field_quoted_newlines_and_ragged_rows(tmp_path):
    rows = [
        b"id,slice,prompt,reference",
        b'1,s,"Two lines:\nwhat is 2 + 2?",4',  # a quoted field with a newline is one row
        b'2,s,"caf\xe9 ' + SECRET.encode() + b'",x',  # bytes that are not UTF-8 in one field
        b",,,",  # blank
        b"3,s,What is 3 + 3?,6,extra",  # more fields than the header
        b"4,s,,x",  # empty prompt: missing
    ]
    (tmp_path / "log.csv").write_bytes(codecs.BOM_UTF8 + b"\n".join(rows) + b"\n")
    assert _outcomes(tmp_path / "log.csv") == [
        (1, "ok"),
        (2, "invalid_utf8"),
        (3, "blank"),
        (4, "bad_csv"),
        (5, "missing"),
    ]
    [_, bad, *_] = list(read_log(str(tmp_path / "log.csv")))
    assert bad.fields.reason == "not valid UTF-8 (at byte offset 3 of field 'prompt')"


def test_parquet_binary_column_that_is_not_utf8_and_typed_columns(tmp_path):
    table = pa.table(
        {
            "slice": ["s", "s", "s"],
            "prompt": pa.array([b"What is 1 + 1?", b"caf\xe9 " + SECRET.encode(), b"Hi"], pa.binary()),
            "id": [1, 2, 3],  # numbers are fine for ids
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    assert _outcomes(tmp_path / "log.parquet") == [(1, "ok"), (2, "invalid_utf8"), (3, "ok")]


def test_columns_map_the_log_s_own_names():
    columns = Columns(
        prompt="text", slice="category", timestamp="ts", id="request_id", reference="expected", response="served"
    )
    record = {"text": "What is 2 + 2?", "category": "math", "ts": "2026-11-20 10:00", "request_id": 7, "expected": 4,
              "served": "2 + 2 = 4"}  # fmt: skip
    row = parse_row(1, record, columns, max_prompt_chars=100)
    assert row == {
        "id": "7",
        "timestamp": "2026-11-20T10:00:00+00:00",
        "slice": "math",
        "prompt": "What is 2 + 2?",
        "reference": "4",
        "messages": None,
        "response": "2 + 2 = 4",
    }
    assert columns.missing_from({"text", "category"}) == {
        "id": "request_id",
        "reference": "expected",
        "response": "served",
        "timestamp": "ts",
    }
    assert Columns().missing_from({"id", "prompt"}) == {"slice": "slice"}
    assert Columns().missing_from({"messages", "slice"}) == {}  # chat rows need no prompt column


def test_chat_rows_are_checked_turn_by_turn(tmp_path):
    good = [
        {"role": "system", "content": "You are the support desk of Acme."},
        {"role": "user", "content": "My order is late."},
        {"role": "assistant", "content": "Which order?"},
        {"role": "user", "content": [{"type": "text", "text": "Number 12. Where is it?"}]},  # OpenAI content parts
    ]
    rows = [
        {"slice": "support", "messages": good},
        {"slice": "support", "messages": good[:3]},  # ends with the assistant
        {"slice": "support", "messages": [good[1], good[0]]},  # a system turn after the first
        {"slice": "support", "messages": [{"role": "user"}]},  # no content
        {"slice": "support", "messages": "hello"},  # not a list
        {"slice": "support", "messages": []},
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert _outcomes(tmp_path / "log.jsonl") == [(1, "ok")] + [(n, "bad_messages") for n in range(2, 7)]
    row = parse_row(1, rows[0], Columns(), max_prompt_chars=1000)
    assert row["messages"][-1] == {"role": "user", "content": "Number 12. Where is it?"}
    assert row["prompt"] == (
        "system: You are the support desk of Acme.\nuser: My order is late.\nassistant: Which order?\n"
        "user: Number 12. Where is it?"
    )


def test_times_as_parquet_timestamps_dates_and_epoch_units(tmp_path):
    from datetime import date, datetime

    table = pa.table(
        {
            "slice": ["s"] * 4,
            "prompt": ["a", "b", "c", "d"],
            "timestamp": pa.array([datetime(2026, 11, 20, 10)] * 4, pa.timestamp("us")),
            "day": pa.array([date(2026, 11, 20)] * 4, pa.date32()),
            "epoch": [1_763_632_800, 1_763_632_800_000, 1_763_632_800_000_000, 1_763_632_800_000_000_000],
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    times = {
        column: [
            parse_row(r.row, r.fields, Columns(timestamp=column), 100)["timestamp"]
            for r in read_log(str(tmp_path / "log.parquet"))
        ]
        for column in ("timestamp", "day", "epoch")
    }
    assert times["timestamp"] == ["2026-11-20T10:00:00+00:00"] * 4
    assert times["day"] == ["2026-11-20T00:00:00+00:00"] * 4
    assert times["epoch"] == ["2025-11-20T10:00:00+00:00"] * 4  # seconds, ms, µs, ns alike


def test_a_huge_csv_field_an_escaped_surrogate_and_a_huge_number_are_rows_to_quarantine(tmp_path):
    (tmp_path / "log.csv").write_text("slice,prompt\ns," + "x" * 200_000 + "\ns,fine\n")
    assert _outcomes(tmp_path / "log.csv") == [(1, "too_long"), (2, "ok")]
    lines = ['{"slice": "s", "prompt": "\\udc80 hi"}', '{"slice": "s", "prompt": "x", "n": ' + "9" * 5000 + "}"]
    (tmp_path / "log.jsonl").write_text("\n".join(lines + ['{"slice": "s", "prompt": "fine"}']) + "\n")
    assert _outcomes(tmp_path / "log.jsonl") == [(1, "invalid_utf8"), (2, "bad_json"), (3, "ok")]
