import pytest
from transformers import AutoTokenizer

from tasks.models import CHATML_WITH_GENERATION, END_OF_TURN, model_ref
from tasks.schemas import TRAINING_ROWS
from tasks.stage import write_dataset
from tasks.train import TrainConfig, split_by_prompt, train
from tests.tiny import ORIGINAL_CHATML


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return model_ref(str(tiny_teacher))


def test_tokenizer_stops_at_end_of_turn_and_marks_assistant_tokens(tiny_teacher):
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    assert tokenizer.eos_token == END_OF_TURN and tokenizer.pad_token == END_OF_TURN
    messages = [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "7"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    tokenizer.chat_template = ORIGINAL_CHATML
    assert rendered == tokenizer.apply_chat_template(messages, tokenize=False)  # markers change nothing rendered
    tokenizer.chat_template = CHATML_WITH_GENERATION
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    supervised = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(supervised) == "7" + END_OF_TURN


def test_validation_split_keeps_each_prompt_on_one_side():
    rows = [{"prompt_id": f"p{i // 3}", "sample_index": i % 3} for i in range(30)]
    train_rows, validation = split_by_prompt(rows, 0.2, seed=0)
    assert len(validation) == 2 * 3
    assert not {r["prompt_id"] for r in train_rows} & {r["prompt_id"] for r in validation}


def _chat_rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i % 5} + 1?"},
                {"role": "assistant", "content": "The answer is here."},
            ],
            "prompt_id": f"p{i}",
            "slice": "math",
            "sample_index": 0,
        }
        for i in range(n)
    ]


def test_sft_lowers_held_out_loss_and_saves_the_best_adapter(teacher, tmp_path):
    rows = write_dataset(_chat_rows(40), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(epochs=2, batch_size=4, eval_every_steps=3, learning_rate=2e-3, validation_share=0.2)
    result = train(config, teacher, rows, str(tmp_path / "out"))
    metrics = result.report.metrics
    assert metrics["train_rows"] == 32 and metrics["validation_rows"] == 8
    assert metrics["eval_loss_best"] < metrics["eval_loss_before"]
    assert result.adapter.uri == str(tmp_path / "out" / "adapter")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adapter"]  # no checkpoints left behind
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()


def test_too_few_rows_is_a_clear_error(teacher, tmp_path):
    rows = write_dataset(_chat_rows(1), tmp_path / "rows.parquet", TRAINING_ROWS)
    with pytest.raises(ValueError, match="1 training rows survived filtering"):
        train(TrainConfig(), teacher, rows, str(tmp_path / "out"))
