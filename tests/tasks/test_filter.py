from tasks.filter import FilterConfig, assistant_turn, filter_rows, reason_to_drop
from tasks.schemas import ROLLOUTS, VERDICTS
from tasks.stage import read_dataset, write_dataset
from tasks.verifiers import Number, VerifyConfig
from tasks.verify import verdict_rows

VERIFY = VerifyConfig(by_slice={"math": Number()})


def _verdict(row: dict) -> dict:
    [found] = verdict_rows(VERIFY, [row])
    return found


def _rollout(
    completion: str, slice_name: str = "math", reference: str | None = "7", finish: str = "stop", index: int = 0
):
    return {
        "prompt_id": "p",
        "slice": slice_name,
        "prompt": "What is 3 + 4?",
        "reference": reference,
        "sample_index": index,
        "teacher": "t",
        "completion": completion,
        "finish_reason": finish,
        "prompt_tokens": 5,
        "completion_tokens": 3,
    }


def test_each_drop_reason():
    config = FilterConfig(min_chars=2, max_chars=40)
    cases = {
        "  ": "empty",
        "7": "too_short",
        "3 + 4 = 7, " + "and so on " * 5: "too_long",
        "I'm sorry, I can't help with that": "refusal",
        "3 + 4 = 8": "wrong_answer",
        "3 + 4 = 7": None,
    }
    for completion, reason in cases.items():
        row = _rollout(completion)
        assert (reason_to_drop(config, row, _verdict(row)) or "").split(":")[0] == (reason or ""), completion
    wrong = _rollout("3 + 4 = 8")
    assert reason_to_drop(config, wrong, _verdict(wrong)) == "wrong_answer: stated 8"
    truncated = _rollout("3 + 4 = 7 and", finish="length")
    assert reason_to_drop(config, truncated, _verdict(truncated)) == "truncated"
    assert reason_to_drop(config.model_copy(update={"drop_truncated": False}), truncated, _verdict(truncated)) is None
    assert reason_to_drop(config.model_copy(update={"verify": False}), wrong, _verdict(wrong)) is None


def test_stage_writes_chat_rows_and_rejects_with_reasons(tmp_path):
    rows = [
        _rollout("3 + 4 = 7.", index=0),
        _rollout("3 + 4 = 8.", index=1),
        _rollout("Hello there!", slice_name="chat", reference=None, index=2),  # no verifier: kept, counted
    ]
    verdicts = write_dataset(verdict_rows(VERIFY, rows), tmp_path / "v.parquet", VERDICTS)
    result = filter_rows(
        FilterConfig(), write_dataset(rows, tmp_path / "in.parquet", ROLLOUTS), verdicts, None, str(tmp_path)
    )
    kept = read_dataset(result.rows)
    assert [r["messages"] for r in kept] == [
        [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "3 + 4 = 7."}],
        [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "Hello there!"}],
    ]
    assert [(r["sample_index"], r["reason"]) for r in read_dataset(result.rejected)] == [(1, "wrong_answer: stated 8")]
    assert result.report.dropped == {"wrong_answer": 1}


def test_reasoning_goes_into_the_assistant_turn_unless_switched_off():
    row = {**_rollout("7"), "reasoning": "3 plus 4 is 7."}
    assert assistant_turn(row, include_reasoning=True) == "<think>\n3 plus 4 is 7.\n</think>\n\n7"
    assert assistant_turn(row, include_reasoning=False) == "7"
    assert assistant_turn({**row, "reasoning": None}, include_reasoning=True) == "7"


def test_a_chat_row_trains_on_its_whole_conversation_then_the_teacher_s_answer():
    from tasks.filter import training_row

    turns = [{"role": "user", "content": "My order is late."}, {"role": "assistant", "content": "Which one?"}]
    turns.append({"role": "user", "content": "Number 12."})
    row = {**_rollout("It ships today."), "messages": turns}
    assert training_row(row, include_reasoning=False)["messages"] == turns + [
        {"role": "assistant", "content": "It ships today."}
    ]
