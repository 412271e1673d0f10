import pytest
import torch

from tasks.dpo import PreferenceConfig, train_dpo
from tasks.filter import FilterConfig, filter_rows
from tasks.models import load_merged, model_ref
from tasks.refs import Student
from tasks.schemas import PREFERENCE_PAIRS, ROLLOUTS, TRAINING_ROWS, VERDICTS
from tasks.stage import read_dataset, write_dataset
from tasks.train import TrainConfig, train


def _pairs(rollouts: list[dict], verdicts: list[dict], tmp_path):
    """The filter's preference pairs for these rollouts and verdicts."""
    found = filter_rows(FilterConfig(), write_dataset(rollouts, tmp_path / "rollouts.parquet", ROLLOUTS),
                        write_dataset(verdicts, tmp_path / "verdicts.parquet", VERDICTS), None,
                        str(tmp_path / "filter"))  # fmt: skip
    return found.pairs


def _rollout(prompt_id: str, index: int, completion: str, prompt: str = "Wie viel ist 2 + 2?", **extra) -> dict:
    return {"prompt_id": prompt_id, "slice": "math", "prompt": prompt, "reference": "4", "sample_index": index,
            "teacher": "t", "completion": completion, "reasoning": None, "finish_reason": "stop",
            "prompt_tokens": 5, "completion_tokens": 3, "logprobs": None, "messages": None} | extra  # fmt: skip


def _verdict(prompt_id: str, index: int, ok: bool | None, extracted: str | None = None) -> dict:
    return {"prompt_id": prompt_id, "sample_index": index, "verifier": "math", "ok": ok, "score": float(bool(ok)),
            "reason": "number matches" if ok else "stated 5", "extracted": extracted}  # fmt: skip


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2?"}]


def test_pairs_are_a_verified_right_answer_the_filter_keeps_against_a_verified_wrong_one(tmp_path):
    rollouts = [
        _rollout("de", 0, "Das ist 5."), _rollout("de", 1, "Das ist 4.", finish_reason="length"),
        _rollout("de", 2, "Das ist 4."), _rollout("de", 3, "Es sind 4."),
        _rollout("ja", 0, "答えは4です。", prompt="2 + 2 は？"), _rollout("ja", 1, "答えは4。", prompt="2 + 2 は？"),
        _rollout("es", 0, "Son cinco.", prompt="¿Cuánto es 2 + 2?"),
        _rollout("es", 1, '{"answer": 4} claro', prompt="¿Cuánto es 2 + 2?"),
        _rollout("chat", 0, "Five.", messages=CHAT), _rollout("chat", 1, "Four.", messages=CHAT),
    ]  # fmt: skip
    verdicts = [
        _verdict("de", 0, False), _verdict("de", 1, True), _verdict("de", 2, True), _verdict("de", 3, True),
        _verdict("ja", 0, True), _verdict("ja", 1, True),  # both right: nothing to prefer
        _verdict("es", 0, False), _verdict("es", 1, True, extracted='{"answer": 4}'),
        _verdict("chat", 0, False), _verdict("chat", 1, True),
    ]  # fmt: skip
    pairs = read_dataset(_pairs(rollouts, verdicts, tmp_path))
    said = [(p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs]
    assert [p["pair_index"] for p in pairs] == [0, 0, 0]  # one wrong answer each: one pair each
    assert said == [
        ("2 + 2?", "Four.", "Five."),  # the chat row's whole conversation is the prompt
        ("Wie viel ist 2 + 2?", "Das ist 4.", "Das ist 5."),  # the truncated right answer is not chosen
        ("¿Cuánto es 2 + 2?", '{"answer": 4}', "Son cinco."),  # chosen as SFT learns it: what the verifier extracted
    ]
    assert pairs[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert all(p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant" for p in pairs)


def _sequence_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    messages = [{"role": "user", "content": prompt}]
    start = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], return_dict=True)
    ids = torch.tensor([full["input_ids"]])
    with torch.no_grad():
        logprobs = model(ids).logits.log_softmax(-1)[0, :-1].gather(1, ids[0, 1:, None])[:, 0]
    return float(logprobs[len(start) - 1 :].sum())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_moves_the_student_toward_the_verified_answers(tiny_teacher, tmp_path, method):
    teacher = model_ref(str(tiny_teacher))
    prompts = [f"Quick check {i}: is {i} even?" for i in range(24)]
    truth = lambda i: "Yes, it is even." if i % 2 == 0 else "No, it is odd."  # noqa: E731
    lie = lambda i: "No, it is odd." if i % 2 == 0 else "Yes, it is even."  # noqa: E731
    sft_rows = [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": truth(i)}],
         "prompt_id": f"p{i}", "slice": "parity", "sample_index": 0}
        for i, p in enumerate(prompts)
    ]  # fmt: skip
    train_config = TrainConfig(method=method, epochs=1, batch_size=8, eval_every_steps=2, validation_share=0.2)
    sft = train(train_config, teacher, write_dataset(sft_rows, tmp_path / "sft.parquet", TRAINING_ROWS),
                str(tmp_path / "sft"))  # fmt: skip
    rollouts, verdicts = [], []
    for i, p in enumerate(prompts):
        rollouts += [_rollout(f"p{i}", 0, truth(i), prompt=p), _rollout(f"p{i}", 1, lie(i), prompt=p)]
        verdicts += [_verdict(f"p{i}", 0, True), _verdict(f"p{i}", 1, False)]
    config = PreferenceConfig(enabled=True, epochs=3, batch_size=8, learning_rate=1e-3 if method == "lora" else 1e-4)
    student = Student(base=teacher, adapter=sft.adapter)
    found = train_dpo(config, method, student, _pairs(rollouts, verdicts, tmp_path), str(tmp_path / "dpo"))
    assert found.pairs == 24 and found.report.metrics["steps"] == 9
    assert found.student.base == teacher and found.student.adapter.uri == str(tmp_path / "dpo" / "adapter")

    def margin(trained: Student) -> float:
        model, tokenizer = load_merged(trained.base.uri, trained.adapter.uri)
        return sum(_sequence_logprob(model, tokenizer, p, truth(i)) - _sequence_logprob(model, tokenizer, p, lie(i))
                   for i, p in enumerate(prompts))  # fmt: skip

    assert margin(found.student) > margin(student) + 1.0


def test_too_few_pairs_skip_dpo_and_say_so(tiny_teacher, tmp_path):
    pairs = [{"prompt": [{"role": "user", "content": "Wie viel ist 2 + 2?"}],
              "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}],
              "prompt_id": "de", "slice": "math", "pair_index": index} for index in range(3)]  # fmt: skip
    student = Student(base=model_ref(str(tiny_teacher)), adapter=model_ref(str(tiny_teacher)))
    pairs_ref = write_dataset(pairs, tmp_path / "pairs.parquet", PREFERENCE_PAIRS)
    found = train_dpo(PreferenceConfig(enabled=True, pairs_per_prompt=2), "lora", student, pairs_ref, str(tmp_path))
    assert found.student is None and found.pairs == 2  # pairs_per_prompt
    assert "skipped: 2 pairs" in found.report.notes[0]
