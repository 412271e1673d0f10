"""vLLM's `prompt_logprobs` as its server writes them, read without a server: position 0 is null, each position
holds the top-k (ranks 1..k) and the prompt's own token (its true rank, maybe past k), -inf clamped to -9999."""

import numpy as np
import pytest

from tasks.llm.prompt_logprobs import ranked_top
from tasks.llm.types import NoTeacherSignal
from tasks.teacher_topk import served_top_k

RESPONSE = [  # the prompt [7, 5, 9, 4]: what vLLM 0.32 returns with prompt_logprobs 2
    None,
    {"5": {"logprob": -0.2, "rank": 1, "decoded_token": "a"}, "8": {"logprob": -1.9, "rank": 2, "decoded_token": "b"}},
    {"9": {"logprob": -4.1, "rank": 37, "decoded_token": "c"}, "3": {"logprob": -0.5, "rank": 1, "decoded_token": "d"},
     "6": {"logprob": -1.2, "rank": 2, "decoded_token": "e"}},
    {"4": {"logprob": -9999.0, "rank": 2, "decoded_token": "f"},
     "2": {"logprob": -0.0, "rank": 1, "decoded_token": "g"}},
]  # fmt: skip


class Recorded:
    def __init__(self, response):
        self.response, self.asked = response, []

    def top_k(self, token_rows, k):
        self.asked.append((token_rows, k))
        return [[None if at is None else ranked_top(at, k) for at in self.response] for _ in token_rows]


def test_position_t_takes_the_server_s_entry_for_token_t_plus_one_ranked():
    client = Recorded(RESPONSE)
    [top] = served_top_k(client, [([7, 5, 9, 4], [1, 2])], k=2)
    assert client.asked == [([[7, 5, 9, 4]], 2)]  # the row's own token ids, nothing re-tokenized
    assert top.positions.tolist() == [1, 2]
    # logits at 1 predict token 2 (entry 2): the prompt's token 9, ranked 37, is not among the top 2
    assert top.ids.tolist() == [[3, 6], [2, 4]]
    assert np.allclose(top.log_probs.astype(np.float32), [[-0.5, -1.2], [0.0, -9999.0]], rtol=1e-3)  # float16


def test_too_few_log_probabilities_or_another_format_is_refused():
    with pytest.raises(NoTeacherSignal, match="fewer than 3 log-probabilities a token"):
        served_top_k(Recorded(RESPONSE), [([7, 5, 9, 4], [1])], k=3)
    unranked = [None, {"5": {"logprob": -0.2}}]
    with pytest.raises(NoTeacherSignal, match="not as vLLM does"):
        served_top_k(Recorded(unranked), [([7, 5], [0])], k=1)
