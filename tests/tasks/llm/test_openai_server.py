import random
import time
from email.utils import formatdate

import pytest

from tasks.llm.config import ServerConfig
from tasks.llm.http import backoff_s, retry_after_s
from tasks.llm.openai_server import parse_choices
from tasks.llm.types import split_reasoning


@pytest.mark.parametrize(
    ("text", "reasoning", "answer"),
    [
        ("Paris.", None, "Paris."),
        ("<think>France's capital...</think>\n\nParis.", "France's capital...", "Paris."),
        ("<think>a</think> x <think>b</think> y", "a\n\nb", "x  y"),
        ("<think>cut off by max_tokens", "cut off by max_tokens", ""),
    ],
)
def test_reasoning_is_kept_apart_from_the_answer(text, reasoning, answer):
    assert split_reasoning(text) == (reasoning, answer)


def test_retry_after_takes_seconds_or_an_http_date():
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None
    assert 8 <= retry_after_s(formatdate(time.time() + 10, usegmt=True)) <= 10


def test_backoff_doubles_with_jitter_and_is_capped():
    config, rng = ServerConfig(backoff_s=1.0, backoff_max_s=8.0), random.Random(0)
    for attempt, base in enumerate([1, 2, 4, 8, 8]):
        assert 0.5 * base <= backoff_s(config, attempt, rng) <= 1.5 * base


def test_choices_parse_with_reasoning_content_logprobs_and_usage():
    body = {
        "choices": [
            {"index": 1, "finish_reason": "length", "message": {"content": "<think>hmm</think>7"}},
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"content": "7", "reasoning_content": "3 + 4 = 7"},
                "logprobs": {"content": [{"logprob": -0.1}, {"logprob": -0.2}]},
            },
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 6},
    }
    first, second = parse_choices(body)
    assert (first.text, first.reasoning, first.completion_tokens, first.logprobs) == ("7", "3 + 4 = 7", 2, [-0.1, -0.2])
    assert (second.text, second.reasoning, second.finish_reason, second.completion_tokens) == ("7", "hmm", "length", 3)
    assert first.prompt_tokens == second.prompt_tokens == 20
