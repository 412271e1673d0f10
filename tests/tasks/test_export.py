import json

import pytest
from transformers import LlamaConfig

from tasks.export import ExportConfig, GateConfig, check_group_size, export, gate_decision
from tasks.models import ModelRef, fingerprint_checkpoint, generate, load_model
from tasks.schemas import REDACTED_PROMPTS, TRAINING_ROWS
from tasks.stage import write_dataset
from tasks.train import TrainConfig, build_student, sft


def test_gate():
    gate = GateConfig(min_transfer_ratio=0.5)
    assert gate_decision(gate, 0.6, smoke_passed=True)[0] is True
    assert gate_decision(gate, 0.4, smoke_passed=True) == (False, "not promoted: transfer ratio 0.40 < 0.50")
    assert gate_decision(gate, 0.9, smoke_passed=False)[0] is False


def test_group_size_must_divide_the_widths():
    check_group_size(LlamaConfig(hidden_size=576, intermediate_size=1536), 32)
    with pytest.raises(ValueError, match="does not divide"):
        check_group_size(LlamaConfig(hidden_size=576, intermediate_size=1536), 128)


def test_export_merges_quantizes_to_4_bit_and_the_result_loads_and_generates(tiny_teacher, tmp_path):
    teacher = ModelRef(path=str(tiny_teacher), fingerprint=fingerprint_checkpoint(tiny_teacher))
    base = build_student(teacher, TrainConfig(), tmp_path / "models")
    messages = [
        [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]
        for i in range(8)
    ]
    rows = [{"messages": m, "prompt_id": f"p{i}", "slice": "math", "sample_index": 0} for i, m in enumerate(messages)]
    sft(TrainConfig(epochs=1, batch_size=4, eval_every_steps=1), base, rows, tmp_path / "train")
    adapter = ModelRef(path=str(tmp_path / "train" / "adapter"), fingerprint="x")
    prompts = [
        {
            "id": "e",
            "timestamp": None,
            "slice": "math",
            "prompt": "What is 2 + 1?",
            "reference": "3",
            "split": "eval",
            "pii": [],
        }
    ]
    result = export(
        ExportConfig(calibration_rows=8, smoke_prompts=1, max_new_tokens=4),
        base,
        adapter,
        write_dataset(rows, tmp_path / "rows.parquet", TRAINING_ROWS),
        write_dataset(prompts, tmp_path / "prompts.parquet", REDACTED_PROMPTS),
        tmp_path / "export",
    )
    quantization = json.loads((tmp_path / "export" / "awq" / "config.json").read_text())["quantization_config"]
    weights = quantization["config_groups"]["group_0"]["weights"]
    assert quantization["format"] == "pack-quantized" and weights["num_bits"] == 4 and weights["group_size"] == 32
    assert result.quantized and result.model.path.endswith("awq") and len(result.smoke_answers) == 1
    model, tokenizer = load_model(result.model.path)
    [[completion]] = generate(model, tokenizer, ["What is 2 + 1?"], max_new_tokens=4)
    assert completion.completion_tokens > 0
