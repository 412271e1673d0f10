"""The `vllm` backend for real: vLLM's offline engine (CPU build here, the same engine as on GPUs)."""

import pytest

from tasks.llm.config import SamplingConfig, VLLMConfig
from tasks.llm.types import Request
from tasks.llm.vllm_engine import VLLMBackend


@pytest.fixture(scope="session")
def engine(tiny_teacher):
    """One engine for the session: starting it is the slow part."""
    sampling = SamplingConfig(max_new_tokens=8, logprobs=0)
    return VLLMBackend(
        str(tiny_teacher), VLLMConfig(max_model_len=512, dtype="bfloat16"), sampling, batch_size=4, seed=0
    )


def _sample(engine, requests):
    done, refused = {}, {}
    engine.sample(requests, lambda r, c: done.__setitem__(r.id, c), lambda r, m: refused.__setitem__(r.id, m))
    return done, refused


def test_n_samples_per_ask_with_token_counts_and_logprobs(engine):
    done, refused = _sample(
        engine, [Request("a", "What is 1 + 1?", (0, 1, 2)), Request("b", "Hello", (5,)), Request("c", "Hi", (0, 1, 2))]
    )
    assert refused == {} and [len(done[k]) for k in "abc"] == [3, 1, 3]
    for completion in done["a"]:
        assert completion.finish_reason in {"stop", "length"}
        assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens == len(completion.logprobs)
        assert all(lp <= 0 for lp in completion.logprobs)


def test_the_same_prompt_samples_the_same(engine):
    request = Request("same", "Name a colour.", (0, 1))
    first, _ = _sample(engine, [request])
    again, _ = _sample(engine, [request])
    assert [c.text for c in first["same"]] == [c.text for c in again["same"]]
