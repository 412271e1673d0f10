import codecs
import json
from collections import Counter
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.logfile.files import LogError
from tasks.sampling import allocate, stratified_sample
from tasks.source import (
    SourceConfig,
    check_source,
    log_digest,
    source,
    split_eval,
)
from tasks.stage import read_dataset


def _rows(n_by_slice: dict[str, int]) -> list[dict]:
    return [
        {"id": f"{name}-{i}", "slice": name, "prompt": f"{name} question {i}", "reference": "x", "timestamp": None}
        for name, n in n_by_slice.items()
        for i in range(n)
    ]


def test_quarantine_holds_exactly_the_malformed_rows_with_row_and_field(demo_log, tmp_path):
    path, traffic = demo_log
    result = source(SourceConfig(path=str(path), sample_size=50, eval_size=10), [], str(tmp_path))
    quarantine = read_dataset(result.quarantine)
    assert {q["row"] for q in quarantine} == traffic.malformed_lines
    for q in quarantine:
        assert q["reason"].startswith(f"row {q['row']}: ")
        assert q["field"] is None or f"'{q['field']}'" in q["reason"]
    assert {q["field"] for q in quarantine} >= {"prompt", "slice", "timestamp", None}
    assert result.report.dropped["malformed"] == len(traffic.malformed_lines)
    # every line is accounted for: kept, quarantined, outside the window, or not sampled
    assert result.report.rows_in == len(traffic.lines)
    assert result.report.rows_out + sum(result.report.dropped.values()) == len(traffic.lines)


def test_reads_jsonl_csv_and_parquet_alike(tmp_path):
    rows = [
        {"id": "a", "slice": "s1", "prompt": "What is 1 + 2?", "reference": "3", "timestamp": "2026-11-20T10:00:00Z"},
        {
            "id": "b",
            "slice": "s2",
            "prompt": "Capital of France?",
            "reference": "Paris",
            "timestamp": "2026-11-20T11:00:00Z",
        },
        {"id": "c", "slice": "s2", "prompt": "", "reference": "x", "timestamp": "2026-11-20T12:00:00Z"},
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "log.parquet")
    header = ",".join(rows[0])
    lines = [",".join(str(r[k]) for k in rows[0]) for r in rows]
    (tmp_path / "log.csv").write_text("\n".join([header, *lines]) + "\n")
    seen = {}
    for suffix in ("jsonl", "csv", "parquet"):
        config = SourceConfig(path=str(tmp_path / f"log.{suffix}"), sample_size=10, eval_size=0)
        result = source(config, [], str(tmp_path / suffix))
        seen[suffix] = sorted((r["id"], r["prompt"], r["reference"]) for r in read_dataset(result.train_prompts))
        assert [q["field"] for q in read_dataset(result.quarantine)] == ["prompt"]
    assert (
        seen["jsonl"]
        == seen["csv"]
        == seen["parquet"]
        == [("a", "What is 1 + 2?", "3"), ("b", "Capital of France?", "Paris")]
    )


def test_unsupported_format_missing_log_and_remote_url_are_one_line_errors(tmp_path):
    (tmp_path / "log.txt").write_text("hello")
    with pytest.raises(LogError, match="unsupported prompt log format '.txt'"):
        source(SourceConfig(path=str(tmp_path / "log.txt")), [], str(tmp_path))
    with pytest.raises(LogError, match="no such file.*redistill demo-data"):
        log_digest(str(tmp_path / "nope.jsonl"))
    with pytest.raises(LogError, match="no file matches this pattern"):
        check_source(SourceConfig(path=str(tmp_path / "2026-11-*.jsonl")))
    with pytest.raises(LogError, match=r"s3://logs/2026/11/\*.jsonl: cannot be listed"):
        check_source(SourceConfig(path="s3://logs/2026/11/*.jsonl"))  # no S3 server or credentials here


def test_allocate_is_proportional_and_exact():
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(allocate({"a": 7, "b": 5, "c": 1}, 6).values()) == 6
    assert allocate({"a": 2, "b": 1}, 100) == {"a": 2, "b": 1}  # never more than there is


def test_sample_matches_the_slice_mix():
    rows = _rows({"big": 600, "mid": 300, "small": 100})
    sample = stratified_sample(rows, 100, seed=3)
    assert Counter(r["slice"] for r in sample) == {"big": 60, "mid": 30, "small": 10}
    assert len({r["id"] for r in sample}) == 100
    assert stratified_sample(rows, 100, seed=3) == sample  # deterministic by seed


def test_eval_split_is_by_prompt_text_and_removes_every_copy():
    rows = _rows({"a": 20, "b": 20})
    copies = [
        {**r, "id": r["id"] + "-copy", "prompt": r["prompt"].upper() + "?"} for r in rows
    ]  # same after normalising
    held_out, rest = split_eval(rows + copies, eval_size=8, seed=0)
    assert Counter(r["slice"] for r in held_out) == {"a": 4, "b": 4}
    held_texts = {r["prompt"].lower().rstrip("?") for r in held_out}
    assert not held_texts & {r["prompt"].lower().rstrip("?") for r in rest}
    assert len(rest) == len(rows + copies) - 2 * 8


def test_time_window_keeps_rows_inside_and_counts_the_rest(demo_log, tmp_path):
    path, _ = demo_log
    config = SourceConfig(
        path=str(path), since=datetime(2026, 11, 18), until=datetime(2026, 11, 20), sample_size=1000, eval_size=0
    )
    result = source(config, [], str(tmp_path))
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in read_dataset(result.train_prompts)]
    assert stamps and all(datetime(2026, 11, 18).date() <= s.date() < datetime(2026, 11, 20).date() for s in stamps)
    assert result.report.dropped["outside_window"] > 0


def test_train_and_held_out_prompts_are_two_datasets_and_labels_come_from_every_row(tmp_path):
    rows = [
        {
            "id": str(i),
            "slice": "sentiment",
            "prompt": f"Review {i}: fine.",
            "reference": ["positive", "negative"][i % 2],
        }
        for i in range(40)
    ]
    rows.append({"id": "rare", "slice": "sentiment", "prompt": "Review: meh.", "reference": "neutral"})
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = SourceConfig(path=str(tmp_path / "log.jsonl"), sample_size=12, eval_size=6, seed=0)
    result = source(config, ["sentiment"], str(tmp_path / "out"))
    train, held_out = read_dataset(result.train_prompts), read_dataset(result.eval_prompts)
    assert len(train) == 12 and len(held_out) == 6
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held_out}
    assert "split" not in train[0]  # no later stage splits again
    # the rare label is in neither sample, and still in the label set: computed from every valid row
    assert "neutral" not in {r["reference"] for r in train + held_out}
    assert result.labels == {"sentiment": ["negative", "neutral", "positive"]}


def test_a_row_of_invalid_utf8_is_quarantined_and_a_byte_order_mark_is_not_data(tmp_path):
    good = [
        {"id": f"r{i}", "slice": "s", "prompt": f"Wie viel ist {i} + 1? Grüße", "reference": str(i + 1)}
        for i in range(4)
    ]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in good]
    before_bad_byte = b'{"id": "bad", "slice": "s", "prompt": "caf'
    lines.insert(2, before_bad_byte + b"\xe9" + b' latin-1"}')  # not UTF-8
    (tmp_path / "log.jsonl").write_bytes(codecs.BOM_UTF8 + b"\n".join(lines) + b"\n")
    result = source(
        SourceConfig(path=str(tmp_path / "log.jsonl"), sample_size=10, eval_size=0), [], str(tmp_path / "j")
    )
    assert sorted(r["id"] for r in read_dataset(result.train_prompts)) == ["r0", "r1", "r2", "r3"]  # row 1 too
    [bad] = read_dataset(result.quarantine)
    assert bad["row"] == 3
    assert bad["reason"] == f"row 3: not valid UTF-8 (at byte offset {len(before_bad_byte)} of the row)"
    assert "latin-1" not in bad["reason"]  # the reason names where, never what

    header = "prompt,id,slice,reference\n"  # the prompt first: a BOM would glue itself to its name
    (tmp_path / "log.csv").write_bytes(codecs.BOM_UTF8 + (header + "What is 1 + 1?,a1,s,2\n").encode())
    result = source(SourceConfig(path=str(tmp_path / "log.csv"), sample_size=10, eval_size=0), [], str(tmp_path / "c"))
    assert [(r["id"], r["prompt"]) for r in read_dataset(result.train_prompts)] == [("a1", "What is 1 + 1?")]
    assert read_dataset(result.quarantine) == []


def _write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _stop(tmp_path, rows, **config) -> str | None:
    path = _write_jsonl(tmp_path / "log.jsonl", rows)
    return source(SourceConfig(path=path, **config), [], str(tmp_path / "out")).report.stop


def test_when_nothing_is_left_the_report_says_why(tmp_path):
    ok = [
        {"id": str(i), "slice": "s", "prompt": f"What is {i} + 1?", "timestamp": "2026-11-20T10:00:00"}
        for i in range(3)
    ]
    assert "holds no rows (2 blank lines)" in _stop(tmp_path, ["", "  "])
    stop = _stop(tmp_path, ["{not json", '{"slice": "s", "prompt": ""}', "[1]"])
    assert stop.startswith("all 3 rows of ") and all(
        f"1 {kind}" in stop for kind in ("bad_json", "empty", "not_object")
    )
    assert "source.eval_size 10 took every distinct prompt of the 3 rows" in _stop(tmp_path, ok, eval_size=10)
    stop = _stop(tmp_path, ok, eval_size=0, since=datetime(2026, 12, 1))
    assert "excluded all 3 valid rows (their times run from 2026-11-20T10:00:00+00:00 to" in stop
    assert _stop(tmp_path, ok, eval_size=0) is None


def test_a_renamed_column_no_row_has_and_a_window_without_times_are_config_errors(tmp_path):
    rows = [{"text": f"What is {i} + 1?", "category": "math"} for i in range(4)]
    columns = {"prompt": "text", "slice": "category"}
    assert _stop(tmp_path, rows, columns=columns, eval_size=0) is None
    stop = _stop(tmp_path, rows, columns={**columns, "timestamp": "ts"}, eval_size=0)
    log = tmp_path / "log.jsonl"
    assert stop == f"source.columns.timestamp 'ts': not a column of {log}; its columns are category, text"
    stop = _stop(tmp_path, rows, columns=columns, eval_size=0, since=datetime(2026, 11, 1))
    assert "has no column 'timestamp' (map yours with source.columns.timestamp)" in stop
    with pytest.raises(
        LogError, match="source.columns.timestamp 'ts': not a column of .*its columns are category, text"
    ):
        check_source(SourceConfig(path=str(tmp_path / "log.jsonl"), columns={**columns, "timestamp": "ts"}))


def test_a_repeated_id_is_quarantined_naming_the_first_row_not_the_id(tmp_path):
    rows = [{"id": "req-secret-77", "slice": "s", "prompt": p} for p in ("What is 1 + 1?", "What is 2 + 2?")]
    result = source(SourceConfig(path=_write_jsonl(tmp_path / "log.jsonl", rows), eval_size=0), [], str(tmp_path))
    [bad] = read_dataset(result.quarantine)
    assert bad["reason"] == "row 2: field 'id' repeats the id of row 1" and bad["field"] == "id"
    assert result.report.metrics["quarantined.duplicate_id"] == 1


def test_a_csv_without_a_header_is_named_as_such_never_quoting_its_first_row(tmp_path):
    """Without a header the first data row is taken for column names: they are content, and not repeated."""
    (tmp_path / "log.csv").write_text("1,support,Hi I am Maria Garcia +44 20 7946 0958,4\n2,support,What is 2 + 2?,4\n")
    with pytest.raises(LogError) as error:
        check_source(SourceConfig(path=str(tmp_path / "log.csv")))
    assert "Maria" not in str(error.value) and "0958" not in str(error.value)
    assert "source.columns.prompt 'prompt'" in str(error.value) and "that are not names" in str(error.value)


def _weeks(tmp_path) -> str:
    """Two weeks of traffic in varied languages: 12 rows in week 1, 6 in week 2, two slices each."""
    asks = ["¿Cuál es la capital de Perú?", "Wie viel ist 7 mal 8?", "Translate 'merci' into English.",
            "東京の人口は？", "Combien font 12 + 30 ?", "What is the capital of Kenya?"]  # fmt: skip
    rows = [
        {"slice": "qa" if i % 2 else "math", "prompt": f"{asks[i % len(asks)]} (w{week}-{i})",
         "timestamp": f"2026-11-{(2 if week == 1 else 9) + i % 6:02d}T08:00:00Z"}
        for week, count in ((1, 12), (2, 6))
        for i in range(count)
    ]  # fmt: skip
    return _write_jsonl(tmp_path / "weeks.jsonl", rows)


def test_a_window_from_the_watermark_reads_only_the_rows_inside_it(tmp_path):
    path = _weeks(tmp_path)
    config = SourceConfig(path=path, since=datetime(2026, 11, 9), until=datetime(2026, 11, 16), eval_size=2)
    result = source(config, [], str(tmp_path / "out"))
    train, held_out = read_dataset(result.train_prompts), read_dataset(result.eval_prompts)
    assert len(train) == 4 and len(held_out) == 2 and all("(w2-" in r["prompt"] for r in train + held_out)
    assert {r["origin"] for r in train + held_out} == {"traffic"}
    report = result.report  # every row accounted for once: kept, or dropped with a reason
    assert report.rows_in == report.rows_out + sum(report.dropped.values()) == 18
    assert report.dropped["outside_window"] == 12 and report.finish is None and report.stop is None


def test_too_little_new_traffic_ends_the_run_completed_not_failed(tmp_path):
    path = _weeks(tmp_path)
    quiet_week = SourceConfig(path=path, since=datetime(2026, 11, 16), until=datetime(2026, 11, 23),
                              eval_size=0, min_new_prompts=3)  # fmt: skip
    report = source(quiet_week, [], str(tmp_path / "out")).report
    assert report.finish == "not enough new traffic (0 < 3 new prompts since 2026-11-16 00:00:00)"
    assert report.stop is None  # completed: the rows wait for the next run
    thin_week = quiet_week.model_copy(update={"since": datetime(2026, 11, 13), "min_new_prompts": 5})
    assert source(thin_week, [], str(tmp_path / "out2")).report.finish.startswith("not enough new traffic (2 < 5")
    busy_week = quiet_week.model_copy(update={"since": datetime(2026, 11, 9)})
    assert source(busy_week, [], str(tmp_path / "out3")).report.finish is None
    # a misnamed time column is said as the mistake it is, never as "not enough traffic"
    misnamed = busy_week.model_copy(update={"columns": busy_week.columns.model_copy(update={"timestamp": "ts"})})
    report = source(misnamed, [], str(tmp_path / "out5")).report
    assert report.finish is None and "source.columns.timestamp 'ts'" in report.stop


def test_production_s_response_is_read_as_text_and_an_unreadable_one_leaves_the_prompt(tmp_path):
    rows = [
        {"slice": "s", "prompt": "Wie spät ist es?", "response": "Es ist zehn Uhr."},
        {"slice": "s", "prompt": "What is 6 x 7?", "response": 42},
        {"slice": "s", "prompt": "¿Dónde está mi pedido?", "response": {"role": "assistant", "content": "En camino."}},
        {"slice": "s", "prompt": "配送状況は？", "response": [{"type": "text", "text": "発送済みです。"}]},
        {"slice": "s", "prompt": "Status?", "response": {"status": 200, "body": "ok"}},  # an HTTP log's object
        {"slice": "s", "prompt": "Ping?", "response": True},
        {"slice": "s", "prompt": "Any news?"},
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    result = source(SourceConfig(path=str(tmp_path / "log.jsonl"), sample_size=10, eval_size=0), [], str(tmp_path))
    found = {r["prompt"]: r["response"] for r in read_dataset(result.train_prompts)}
    assert found == {
        "Wie spät ist es?": "Es ist zehn Uhr.", "What is 6 x 7?": "42", "¿Dónde está mi pedido?": "En camino.",
        "配送状況は？": "発送済みです。", "Status?": None, "Ping?": None, "Any news?": None,
    }  # fmt: skip
    assert result.report.metrics["responses_unreadable"] == 2 and result.report.dropped["malformed"] == 0
    assert "2 rows' 'response' is neither text nor a message" in " ".join(result.report.notes)
