from tasks.schemas import ROLLOUTS
from tasks.stage import read_dataset, write_dataset
from tasks.verifiers import Number, VerifyConfig
from tasks.verify import verify


def _rollout(pid: str, index: int, completion: str, slice_name: str = "math", reference: str | None = "7") -> dict:
    return {
        "prompt_id": pid,
        "slice": slice_name,
        "prompt": "What is 3 + 4?",
        "reference": reference,
        "sample_index": index,
        "teacher": "t",
        "completion": completion,
        "finish_reason": "stop",
        "prompt_tokens": 5,
        "completion_tokens": 3,
    }


def test_one_verdict_per_sample_with_its_reason_and_best_of_n(tmp_path):
    rows = [
        _rollout("p", 0, "3 + 4 = 7."),
        _rollout("p", 1, "3 + 4 = 8."),
        _rollout("q", 0, "It is 9."),
        _rollout("r", 0, "Hello!", slice_name="chat", reference=None),
    ]
    result = verify(
        VerifyConfig(by_slice={"math": Number()}), write_dataset(rows, tmp_path / "r.parquet", ROLLOUTS), str(tmp_path)
    )
    verdicts = read_dataset(result.verdicts)
    assert [(v["prompt_id"], v["sample_index"], v["verifier"], v["ok"], v["reason"]) for v in verdicts] == [
        ("p", 0, "number", True, "number matches"),
        ("p", 1, "number", False, "stated 8"),
        ("q", 0, "number", False, "stated 9"),
        ("r", 0, "none", None, "no verifier for slice chat"),
    ]
    metrics = result.report.metrics
    assert metrics["unverified"] == 1 and metrics["teacher_sample_accuracy"] == 1 / 3
    assert metrics["prompts_with_a_correct_sample"] == 1 / 2 and metrics["sample_accuracy.math"] == 1 / 3


def test_a_majority_slice_is_judged_per_prompt_and_a_json_slice_keeps_its_json(tmp_path):
    from tasks.filter import FilterConfig, filter_rows
    from tasks.verifiers import Json, Majority

    rows = [
        _rollout("p", 0, "17 × 3 = 51", slice_name="vote", reference=None),
        _rollout("p", 1, "Es ist 48.", slice_name="vote", reference=None),
        _rollout("p", 2, "The product is 51.", slice_name="vote", reference=None),
        _rollout("q", 0, "C'est 12.", slice_name="vote", reference=None),  # another prompt: its own vote
        _rollout("j", 0, 'Sure: {"city": "Kyoto"} (from your order)', slice_name="form", reference=None),
    ]
    config = VerifyConfig(by_slice={"vote": Majority(), "form": Json(json_schema={"required": ["city"]})})
    rollouts = write_dataset(rows, tmp_path / "r.parquet", ROLLOUTS)
    verdicts = verify(config, rollouts, str(tmp_path)).verdicts
    found = read_dataset(verdicts)
    assert [v["ok"] for v in found] == [True, False, True, None, True]
    assert found[1]["reason"] == "against the majority 51 (2 of 3)"
    assert found[3]["reason"] == "too few samples state an answer to vote"  # one sample is no majority
    kept = filter_rows(FilterConfig(drop_truncated=False), rollouts, verdicts, None, str(tmp_path / "f"))
    answers = {r["prompt_id"]: r["messages"][-1]["content"] for r in read_dataset(kept.rows)}
    assert answers["j"] == '{"city": "Kyoto"}'  # the JSON alone, not the prose around it


def test_a_prompt_without_the_reference_its_verifier_needs_is_judged_by_its_samples_majority(tmp_path):
    """A synthetic prompt has no reference: a number slice's samples vote on the number they state, a contains
    slice's free text is left unchecked, and a prompt with its reference is verified as ever."""
    from tasks.verifiers import Contains

    rows = [_rollout("s", i, text, reference=None) for i, text in enumerate(["It is 12.", "12", "I think 13."])]
    rows += [_rollout("w", 0, "Moo.", slice_name="sounds", reference=None), _rollout("p", 0, "7")]
    config = VerifyConfig(by_slice={"math": Number(), "sounds": Contains()})
    verdicts = read_dataset(
        verify(config, write_dataset(rows, tmp_path / "r.parquet", ROLLOUTS), str(tmp_path)).verdicts
    )
    assert [(v["verifier"], v["ok"]) for v in verdicts] == [
        ("majority", True), ("majority", True), ("majority", False), ("none", None), ("number", True)
    ]  # fmt: skip
    assert verdicts[2]["reason"] == "against the majority 12 (2 of 3)" and verdicts[3]["reason"] == "no reference"
