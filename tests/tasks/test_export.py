import json

import pytest
from safetensors import safe_open
from transformers import AutoTokenizer, LlamaConfig

from tasks.export import ExportConfig, check_decision, check_group_size, export
from tasks.llamacpp import converter_installed, load_gguf, serving_template
from tasks.llm.local import generate
from tasks.llm.types import Completion
from tasks.llm.vllm_server import vllm_python
from tasks.models import END_OF_TURN, gguf_field, load_model, model_ref
from tasks.schemas import REDACTED_PROMPTS, TRAINING_ROWS
from tasks.serve import ServeConfig, Served, check_serving, serve_check, served_decision
from tasks.stage import write_dataset
from tasks.student import StudentConfig, build_student
from tasks.train import TrainConfig, train
from tasks.verifiers import Number, VerifyConfig


def test_group_size_must_divide_the_widths():
    check_group_size(LlamaConfig(hidden_size=576, intermediate_size=1536), 32)
    with pytest.raises(ValueError, match="does not divide"):
        check_group_size(LlamaConfig(hidden_size=576, intermediate_size=1536), 128)


def _said(*texts: str) -> list[Completion]:
    return [Completion(t, "stop", 5, len(t.split())) for t in texts]


def test_the_check_fails_a_wrong_or_empty_export_that_any_answer_used_to_pass():
    config = ExportConfig(max_accuracy_drop=0.1)  # the default is one point
    right, wrong = _said("The capital of Australia is Canberra."), _said("The capital of Australia is Melbourne.")
    # "Melbourne" passed the old smoke test: any non-empty answer did. Now it is scored against the merged model.
    assert check_decision(config, right, wrong, (1.0, 0.0)) == (
        False,
        "accuracy 0.00 exported vs 1.00 merged: more than the allowed drop 0.10",
    )
    assert check_decision(config, right, wrong, (0.8, 0.7))[0] is True
    # one empty answer among good ones is a wrong answer, not a broken export; all empty is broken
    assert check_decision(config, _said("a", "b"), _said("", "b"), (0.35, 0.42))[0] is True
    assert check_decision(config, _said("a", "b"), _said("", " "), (0.5, 0.5)) == (
        False,
        "the export gave only empty answers",
    )
    # nothing verifiable: the share of prompts answered is compared instead
    assert check_decision(config, _said("a", "b"), _said("a", "b"), (None, None))[0] is True
    assert check_decision(config, _said("a", "b"), _said("a", ""), (None, None)) == (
        False,
        "answered share (no verifier) 0.50 exported vs 1.00 merged: more than the allowed drop 0.10",
    )
    assert check_decision(config, [], [], (None, None))[1].startswith("no held-out prompts")


@pytest.fixture(scope="module")
def trained(tiny_teacher, tmp_path_factory):
    """A tiny student trained one epoch on sums, its rows, and three held-out sums."""
    tmp_path = tmp_path_factory.mktemp("trained")
    base = build_student(StudentConfig(), model_ref(str(tiny_teacher)), str(tmp_path))
    messages = [
        [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]
        for i in range(8)
    ]
    rows = [{"messages": m, "prompt_id": f"p{i}", "slice": "math", "sample_index": 0} for i, m in enumerate(messages)]
    rows_ref = write_dataset(rows, tmp_path / "rows.parquet", TRAINING_ROWS)
    adapter = train(TrainConfig(epochs=1, batch_size=4, eval_every_steps=1), base, rows_ref, str(tmp_path / "train"))
    held_out = [
        {
            "id": f"e{i}",
            "timestamp": None,
            "slice": "math",
            "prompt": f"What is {i} + 2?",
            "reference": str(i + 2),
            "pii": [],
        }
        for i in range(3)
    ]
    return base, adapter.adapter, rows_ref, write_dataset(held_out, tmp_path / "prompts.parquet", REDACTED_PROMPTS)


def _export(trained, out, **config):
    base, adapter, rows, held_out = trained
    config = ExportConfig(calibration_rows=8, check_prompts=2, max_new_tokens=4, **config)
    return export(config, VerifyConfig(by_slice={"math": Number()}), base, adapter, rows, held_out, str(out))


def test_export_merges_quantizes_to_4_bit_and_is_scored_against_the_merged_model(trained, tmp_path):
    result = _export(trained, tmp_path / "export")
    quantization = json.loads((tmp_path / "export" / "awq" / "config.json").read_text())["quantization_config"]
    weights = quantization["config_groups"]["group_0"]["weights"]
    assert quantization["format"] == "pack-quantized" and weights["num_bits"] == 4 and weights["group_size"] == 16
    with safe_open(tmp_path / "export" / "awq" / "model.safetensors", "pt") as saved:
        # the tied embedding is not quantized: stored in bf16, half its fp32 size
        assert saved.get_slice("model.embed_tokens.weight").get_dtype() == "BF16"
    assert result.quantized and result.model.uri.endswith("awq")
    assert result.report.rows_in == 2  # check_prompts
    # the export scored per slice like every other model: its only slice, and overall
    assert set(result.exported_interval) == {"math", "all"}
    assert result.exported_interval["all"].value == result.exported_accuracy
    assert result.merged_accuracy is not None and result.exported_accuracy is not None
    assert result.check_passed == (result.merged_accuracy - result.exported_accuracy <= 0.01 + 1e-9)
    model, tokenizer = load_model(result.model.uri)
    [[completion]] = generate(model, tokenizer, ["What is 2 + 1?"], max_new_tokens=4)
    assert completion.completion_tokens > 0


@pytest.mark.skipif(not converter_installed(), reason="needs llama.cpp's converter (make gguf-env)")
def test_a_gguf_for_llama_cpp_is_written_loaded_back_and_scored(trained, tmp_path):
    """llama.cpp's converter writes Q8_0 with the student's own byte-level tokenizer (llama.cpp names it by its
    pre-tokenizer) and the chat template without training's markers; transformers loads it back and it answers."""
    result = _export(trained, tmp_path / "export", quantize=False, gguf="q8_0")
    path = tmp_path / "export" / "gguf" / "student.q8_0.gguf"
    assert result.gguf == str(path) and result.report.metrics["gguf_mb"] > 0
    assert gguf_field(path, "general.file_type") == 7  # llama.cpp's MOSTLY_Q8_0
    assert (gguf_field(path, "tokenizer.ggml.model"), gguf_field(path, "tokenizer.ggml.pre")) == ("gpt2", "smollm")
    template = gguf_field(path, "tokenizer.chat_template")
    assert "<|im_start|>" in template and "{% generation %}" not in template
    assert set(result.gguf_interval) == {"math", "all"}
    model, tokenizer = load_gguf(path)
    hf = AutoTokenizer.from_pretrained(result.model.uri)
    for text in ("Wie viel ist 1234 + 56?", "Crème brûlée à Zürich — 東京 ✓"):
        assert tokenizer(text)["input_ids"] == hf(text)["input_ids"]
    assert tokenizer.eos_token == hf.eos_token == END_OF_TURN
    [[completion]] = generate(model, tokenizer, ["What is 2 + 1?"], max_new_tokens=4)
    assert completion.completion_tokens > 0


def test_serving_template_renders_what_the_training_template_renders(tiny_teacher):
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    conversation = [{"role": "user", "content": "¿Capital de Perú?"}, {"role": "assistant", "content": "Lima."}]
    plain = tokenizer.apply_chat_template(conversation, tokenize=False)
    tokenizer.chat_template = serving_template(tokenizer.chat_template)
    assert "{% generation %}" not in tokenizer.chat_template
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == plain


@pytest.mark.skipif(not vllm_python().exists(), reason="needs vLLM's environment (make vllm-env)")
def test_vllm_loads_and_serves_the_4_bit_export(trained, tmp_path):
    """The deploy check: vLLM (its CPU build, the same engine as on GPUs) loads the AWQ export and answers the
    check prompts through its OpenAI-compatible server."""
    exported = _export(trained, tmp_path / "export")
    config = ServeConfig(check="on", prompts=2, max_new_tokens=4)
    result = check_serving(config, VerifyConfig(by_slice={"math": Number()}), exported.model, trained[3])
    assert result.served is not None and result.served.error is None, result.served
    assert result.served.answered > 0 and result.served.tokens_per_s > 0 and result.served.accuracy is not None
    assert result.passed and result.reusable() and "served by vLLM: accuracy" in result.reason
    assert result.report.metrics["served_ok"] == 1.0 and result.report.rows_in == 2


def test_a_required_serve_check_without_vllm_fails_and_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("REDISTILL_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    rows = [{"slice": "math", "prompt": "What is 1 + 1?", "reference": "2"}]
    assert serve_check(ServeConfig(check="auto"), VerifyConfig(), "unused", rows) is None
    served = serve_check(ServeConfig(check="on"), VerifyConfig(), "unused", rows)
    assert served_decision(served) == (
        False,
        f"vLLM could not serve it: serve.check is 'on' but vLLM's environment is missing "
        f"({tmp_path / 'missing' / 'python'}): run `make vllm-env`",
    )
    assert served_decision(Served(accuracy=None, answered=0.0, tokens_per_s=0.0)) == (
        False,
        "served by vLLM, it gave only empty answers",
    )


def test_a_deploy_check_that_failed_or_never_ran_is_not_reused_from_the_cache():
    from tasks.serve import ServeChecked
    from tasks.stage import StageReport

    report = StageReport(stage="serve", rows_in=0, rows_out=0)
    served = Served(accuracy=0.5, answered=1.0, tokens_per_s=90.0)
    assert ServeChecked(served=served, passed=True, reason="served", report=report).reusable()
    assert not ServeChecked(served=served, passed=False, reason="empty", report=report).reusable()
    assert ServeChecked(served=None, passed=True, reason="", report=report).reusable()  # serve.check off
    # auto, without vLLM's environment: once `make vllm-env` has run, the next run checks it
    assert not ServeChecked(served=None, passed=True, reason="", skipped=True, report=report).reusable()
