"""`kd` training: TRL's SFTTrainer with the divergence from the teacher's stored top-k mixed in."""

import shutil

import pytest

from tasks.llm.store import open_store
from tasks.models import model_ref
from tasks.schemas import TRAINING_ROWS
from tasks.stage import write_dataset
from tasks.teacher_topk import PURPOSE
from tasks.train import TrainConfig, train
from tests.tiny import build_tiny_teacher

QUESTIONS = [
    "What is the capital of Peru?", "Wie spät ist es in Tokio?", "日本の首都はどこですか？", "¿Cuánto es 7 por 6?",
    "Quelle est la couleur du ciel ?", "Сколько дней в неделе?", "Name a prime number above 20.", "Was kostet das?",
]  # fmt: skip
ANSWERS = ["Lima.", "Es ist Mitternacht.", "東京です。", "42.", "Bleu.", "Семь.", "23.", "Zehn Euro."]


def _rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + f" ({i})"},
                {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]},
            ],
            "prompt_id": f"p{i}",
            "slice": "mixed",
            "sample_index": 0,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """Another random model with the teacher's tokenizer: far from the teacher, so there is a gap to close."""
    return model_ref(str(build_tiny_teacher(tmp_path_factory.mktemp("student"), layers=2, seed=1)))


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_kd_lowers_the_held_out_divergence_to_the_teacher(tiny_teacher, student, divergence, tmp_path):
    rows = write_dataset(_rows(40), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(objective="kd", kd_divergence=divergence, kd_ce_weight=0.0, kd_top_k=8, epochs=2,
                         batch_size=4, eval_every_steps=4, learning_rate=3e-3, validation_share=0.2)  # fmt: skip
    store = str(tmp_path / "store.db")
    result = train(config, student, rows, str(tmp_path / "out"), teacher=model_ref(str(tiny_teacher)), store=store)
    metrics = result.report.metrics
    assert metrics["teacher_top_k_computed"] == 40  # every row, training and validation
    assert metrics["eval_divergence_best"] < metrics["eval_divergence_before"]


def test_a_student_that_is_the_teacher_starts_at_zero_divergence(sharp_teacher, tmp_path):
    """The stored top-k line up with the positions the loss counts: one position off, and the divergence of the
    teacher from itself would not be zero."""
    rows = write_dataset(_rows(12), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(objective="kd", kd_ce_weight=0.0, epochs=1, batch_size=4, eval_every_steps=2,
                         validation_share=0.25)  # fmt: skip
    teacher = model_ref(str(sharp_teacher))
    metrics = train(config, teacher, rows, str(tmp_path / "out"), teacher=teacher).report.metrics
    assert metrics["eval_divergence_before"] == pytest.approx(0.0, abs=1e-3)  # float16 log-probabilities; off: > 1


def test_on_policy_trains_on_the_student_s_own_answers_and_lowers_the_held_out_divergence(
    tiny_teacher, student, tmp_path, monkeypatch
):
    from trl.experimental.gkd import GKDTrainer

    generated = []
    original = GKDTrainer.generate_on_policy_outputs

    def counted(model, inputs, generation_config):
        generated.append(inputs["prompts"].shape[0])
        return original(model, inputs, generation_config)

    monkeypatch.setattr(GKDTrainer, "generate_on_policy_outputs", staticmethod(counted))
    rows = write_dataset(_rows(24), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(objective="on_policy", kd_divergence="reverse_kl", on_policy_share=0.5,
                         on_policy_max_new_tokens=8, epochs=2, batch_size=4, eval_every_steps=3, learning_rate=3e-3,
                         validation_share=0.25)  # fmt: skip
    result = train(config, student, rows, str(tmp_path / "out"), teacher=model_ref(str(tiny_teacher)))
    metrics = result.report.metrics  # GKD's eval loss is the divergence on the validation rows' answers
    assert metrics["eval_loss_best"] < metrics["eval_loss_before"]
    assert 0 < len(generated) < metrics["steps"]  # about half the steps on the student's own answers
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()


def test_the_teacher_s_top_k_are_not_computed_again_on_a_rerun(tiny_teacher, student, tmp_path):
    rows = write_dataset(_rows(12), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(objective="kd", epochs=1, batch_size=4, eval_every_steps=2, validation_share=0.25)
    store, teacher = str(tmp_path / "store.db"), model_ref(str(tiny_teacher))
    first = train(config, student, rows, str(tmp_path / "one"), teacher=teacher, store=store)
    again = train(config, student, rows, str(tmp_path / "two"), teacher=teacher, store=store)  # as after a crash
    assert first.report.metrics["teacher_top_k_computed"] == 12 and again.report.metrics["teacher_top_k_computed"] == 0
    opened = open_store(store)
    try:
        kept = opened.db.execute("SELECT COUNT(*), SUM(LENGTH(text)), SUM(completion_tokens) FROM requests "
                                 "WHERE purpose = ?", (PURPOSE,)).fetchone()  # fmt: skip
    finally:
        opened.close()
    rows_kept, stored_bytes, tokens = kept
    assert rows_kept == 12 and stored_bytes / tokens < 8 * 20 * 1.4  # about 160 bytes a token at k 20


def test_a_student_with_another_tokenizer_is_refused_before_training(tiny_teacher, student, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "other"
    shutil.copytree(student.uri, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<|redistill_extra|>"])
    tokenizer.save_pretrained(other)
    rows = write_dataset(_rows(8), tmp_path / "rows.parquet", TRAINING_ROWS)
    with pytest.raises(ValueError, match="train.objective needs the student to share the teacher's tokenizer"):
        train(TrainConfig(objective="kd"), model_ref(str(other)), rows, str(tmp_path / "out"),
              teacher=model_ref(str(tiny_teacher)), store=str(tmp_path / "store.db"))  # fmt: skip


def test_kd_without_a_teacher_and_on_policy_without_its_weights_are_refused(student, tmp_path):
    from tasks.llm.config import ServedModel

    rows = write_dataset(_rows(8), tmp_path / "rows.parquet", TRAINING_ROWS)
    with pytest.raises(ValueError, match="train.objective 'kd' needs the teacher: its weights here, or its vLLM"):
        train(TrainConfig(objective="kd"), student, rows, str(tmp_path / "out"), teacher=None, store=None)
    with pytest.raises(ValueError, match="train.objective 'on_policy' needs the teacher's weights on this machine"):
        train(TrainConfig(objective="on_policy"), student, rows, str(tmp_path / "out"),
              teacher=ServedModel(model="teacher"), store=None)  # fmt: skip


def test_on_policy_with_a_served_teacher_is_refused_when_the_config_is_read():
    from pydantic import ValidationError

    from flows.distill import DistillConfig

    served = {"backend": "openai", "model": "teacher", "server": {"base_url": "http://127.0.0.1:9/v1"}}
    student = {"init": "checkpoint", "checkpoint": "/m"}
    with pytest.raises(ValidationError, match="train.objective 'on_policy' needs the teacher's weights here"):
        DistillConfig(teacher=served, student=student, train={"objective": "on_policy"})
    DistillConfig(teacher=served, student=student, train={"objective": "kd"})  # its vLLM server scores the rows
    DistillConfig(teacher=served, student=student, train={"objective": "sft"})
    DistillConfig(train={"objective": "on_policy"})  # the embedded teacher's weights are here
