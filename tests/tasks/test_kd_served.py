"""`kd` with a served teacher: vLLM's own API server (CPU build, its own environment) serving the tiny teacher
scores the training rows' token ids (`prompt_logprobs`), and the same loss trains on them."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tasks.kd_trainer import check_same_tokenizer
from tasks.llm.config import ServedModel, ServerConfig
from tasks.llm.prompt_logprobs import PromptLogprobs
from tasks.llm.types import NoTeacherSignal
from tasks.llm.vllm_server import VLLMServer, vllm_python
from tasks.models import load_model, model_ref
from tasks.schemas import TRAINING_ROWS
from tasks.stage import write_dataset
from tasks.teacher_topk import served_top_k
from tasks.train import TrainConfig, train
from tests.tasks.test_kd_train import _rows

pytestmark = pytest.mark.skipif(not vllm_python().exists(), reason="needs vLLM's environment (make vllm-env)")


@pytest.fixture(scope="module")
def served_teacher(sharp_teacher, tmp_path_factory):
    """vLLM's OpenAI-compatible server serving it as "teacher"."""
    with VLLMServer(sharp_teacher, tmp_path_factory.mktemp("vllm-sharp")) as server:
        yield server


def _served(base_url: str) -> ServedModel:
    return ServedModel(model="teacher", server=ServerConfig(base_url=base_url, max_retries=1, backoff_s=0.1))


def test_the_server_s_top_k_are_the_teacher_s_own_log_probabilities(served_teacher, sharp_teacher):
    import torch

    ids = [1, 17, 42, 99, 7, 3, 250, 4096]
    [top] = served_top_k(PromptLogprobs(_served(served_teacher.base_url), None), [(ids, [2, 4, 6])], k=5)
    model, _ = load_model(str(sharp_teacher))
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    # position t holds the distribution of token t + 1: the local logits at t, where the server's are in bfloat16
    local = full[[2, 4, 6]].gather(1, torch.from_numpy(top.ids.astype("int64")))
    assert np.allclose(top.log_probs.astype(np.float32), local.numpy(), atol=0.1)
    assert top.ids[:, :3].tolist() == full[[2, 4, 6]].topk(3, dim=-1).indices.tolist()  # ranked, likeliest first


def test_kd_from_a_served_teacher_that_is_the_student_starts_near_zero_divergence(
    served_teacher, sharp_teacher, tmp_path
):
    """The served top-k line up with the positions the loss counts: one position off, and the divergence of the
    teacher from itself would not be near zero. A rerun asks the server nothing."""
    rows = write_dataset(_rows(12), tmp_path / "rows.parquet", TRAINING_ROWS)
    config = TrainConfig(objective="kd", kd_ce_weight=0.0, epochs=1, batch_size=4, eval_every_steps=2,
                         validation_share=0.25)  # fmt: skip
    student, served, store = model_ref(str(sharp_teacher)), _served(served_teacher.base_url), str(tmp_path / "store.db")
    metrics = train(config, student, rows, str(tmp_path / "one"), teacher=served, store=store).report.metrics
    assert metrics["teacher_top_k_computed"] == 12
    assert metrics["eval_divergence_before"] < 0.05  # bfloat16 on the server's side; a position off: over 1
    again = train(config, student, rows, str(tmp_path / "two"), teacher=served, store=store).report.metrics
    assert again["teacher_top_k_computed"] == 0


def test_a_student_whose_tokenizer_splits_otherwise_is_refused(served_teacher, sharp_teacher, tmp_path):
    """Same vocabulary, another split (a lowercasing normaliser): only the server's tokenizer can tell."""
    import shutil

    from tokenizers import normalizers
    from transformers import AutoTokenizer

    check_same_tokenizer(model_ref(str(sharp_teacher)), _served(served_teacher.base_url))  # the same: passes
    other = tmp_path / "lowercase"
    shutil.copytree(sharp_teacher, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.save_pretrained(other)
    with pytest.raises(NoTeacherSignal, match=r"share the teacher's tokenizer: the server \(teacher\) splits a probe"):
        check_same_tokenizer(model_ref(str(other)), _served(served_teacher.base_url))


def test_more_top_k_than_the_server_gives_is_refused_with_its_reason(served_teacher):
    client = PromptLogprobs(_served(served_teacher.base_url), None)
    with pytest.raises(NoTeacherSignal, match="would not score a training row: HTTP 400: .*logprobs"):
        client.top_k([[1, 17, 42]], k=21)  # vLLM's --max-logprobs is 20 by default


class _NoPromptLogprobs(BaseHTTPRequestHandler):
    """A completions server that ignores `prompt_logprobs`, as servers other than vLLM do."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"index": 0, "text": "x", "finish_reason": "length"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_without_prompt_log_probabilities_is_refused_before_training():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoPromptLogprobs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = PromptLogprobs(_served(f"http://127.0.0.1:{server.server_address[1]}/v1"), None)
        with pytest.raises(NoTeacherSignal, match="returns no log-probabilities over given tokens"):
            client.top_k([[1, 17, 42]], k=4)
    finally:
        server.shutdown()
