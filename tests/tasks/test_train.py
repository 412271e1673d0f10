import pytest
from transformers import AutoTokenizer

from tasks.curves import curve_from, plot, series
from tasks.models import CHATML_WITH_GENERATION, END_OF_TURN, load_merged, load_model, model_ref
from tasks.schemas import TRAINING_ROWS
from tasks.stage import write_dataset
from tasks.train import TrainConfig, sft_trainer, split_by_prompt, train
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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adapter", "curves.png"]  # no checkpoints left
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()
    evaluated = [p for p in result.curve if p.eval_loss is not None]
    assert len(evaluated) >= 2 and min(p.eval_loss for p in evaluated) == metrics["eval_loss_best"]
    assert all(p.loss is not None and p.learning_rate for p in result.curve if p.step % 3 == 0)
    assert (tmp_path / "out" / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_too_few_rows_is_a_clear_error(teacher, tmp_path):
    rows = write_dataset(_chat_rows(1), tmp_path / "rows.parquet", TRAINING_ROWS)
    with pytest.raises(ValueError, match="1 training rows survived filtering"):
        train(TrainConfig(), teacher, rows, str(tmp_path / "out"))


def test_the_loss_covers_exactly_the_assistant_turns_of_a_multi_turn_conversation(tiny_teacher, tmp_path):
    """Through TRL's own tokenization and collator: the labels the loss sees are the assistant turns (each with
    its end-of-turn token) and nothing of the system prompt or the user's turns."""
    conversation = [
        {"role": "system", "content": "Tu es un assistant de support."},
        {"role": "user", "content": "Bonjour, quelle est la capitale de l'Australie ?"},
        {"role": "assistant", "content": "Canberra."},
        {"role": "user", "content": "Und die von Kanada? 加拿大呢？"},
        {"role": "assistant", "content": "Ottawa, 渥太华."},
    ]
    rows = [{"messages": conversation, "prompt_id": "p0"}]
    trainer = sft_trainer(TrainConfig(max_length=512), tiny_teacher, rows, rows, tmp_path)
    tokenizer = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    learned = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    ignored = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label == -100])
    assert tokenizer.decode(learned) == "Canberra." + END_OF_TURN + "Ottawa, 渥太华." + END_OF_TURN
    assert "Canberra" not in ignored and "Ottawa" not in ignored
    assert all(turn["content"] in ignored for turn in conversation if turn["role"] != "assistant")


def test_curves_merge_train_and_eval_logs_per_step_and_leave_out_the_summary():
    history = [
        {"eval_loss": 9.0, "step": 0},  # trainer.evaluate() before training
        {"loss": 8.0, "learning_rate": 0.002, "step": 2},
        {"loss": 6.5, "learning_rate": 0.0015, "step": 4},
        {"eval_loss": 7.0, "step": 4},
        {"train_loss": 7.2, "train_runtime": 3.0, "step": 4},
    ]
    points = curve_from(history)
    assert [p.model_dump() for p in points] == [
        {"step": 2, "loss": 8.0, "eval_loss": None, "learning_rate": 0.002},
        {"step": 4, "loss": 6.5, "eval_loss": 7.0, "learning_rate": 0.0015},
    ]
    assert series(points) == {
        "loss": [(2, 8.0), (4, 6.5)],
        "eval_loss": [(4, 7.0)],
        "learning_rate": [(2, 0.002), (4, 0.0015)],
    }
    assert plot(points).startswith(b"\x89PNG")


def test_full_fine_tuning_trains_every_weight_and_loads_without_a_merge(teacher, tmp_path):
    import torch

    rows = write_dataset(_chat_rows(40), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(method="full", epochs=2, batch_size=4, eval_every_steps=3, validation_share=0.2)
    result = train(config, teacher, rows, str(tmp_path / "out"))
    assert result.report.metrics["eval_loss_best"] < result.report.metrics["eval_loss_before"]
    saved = tmp_path / "out" / "adapter"
    assert (saved / "model.safetensors").exists() and not (saved / "adapter_config.json").exists()
    tuned, _ = load_merged(teacher.uri, result.adapter.uri)  # a whole model: loaded as it is
    before, _ = load_model(teacher.uri)
    changed = [n for n, p in tuned.named_parameters() if not torch.equal(p, before.get_parameter(n))]
    assert any("mlp" in n for n in changed) and any("self_attn" in n for n in changed)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_qlora_without_a_gpu_is_refused_in_one_line(teacher, tmp_path):
    rows = write_dataset(_chat_rows(8), tmp_path / "rows.parquet", TRAINING_ROWS)
    with pytest.raises(ValueError, match="train.method 'qlora' .* needs a CUDA GPU; this machine has none"):
        train(TrainConfig(method="qlora"), teacher, rows, str(tmp_path / "out"))
