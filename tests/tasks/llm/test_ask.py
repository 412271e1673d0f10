"""ask(): only what the store lacks goes to the model, and a short answer is kept, not fatal."""

from tasks.llm.ask import ask
from tasks.llm.config import LLMConfig
from tasks.llm.store import open_store
from tasks.llm.types import Completion


class ScriptedModel:
    """A model double that answers each request with `per_request` completions and records what it was asked."""

    def __init__(self, per_request: int | None = None):
        self.per_request, self.asked = per_request, []

    def sample(self, requests, on_done, on_rejected):
        for request in requests:
            self.asked.append((request.id, request.indices))
            count = len(request.indices) if self.per_request is None else self.per_request
            on_done(request, [Completion(f"{request.id}/{i}", "stop", 3, 2) for i in range(count)])

    def close(self):
        pass


SERVED = LLMConfig(backend="openai", model="m")


def test_only_missing_samples_are_asked_for(tmp_path):
    store = open_store(str(tmp_path / "s.sqlite"))
    first = ScriptedModel()
    ask(store, "judge", SERVED, None, {"a": "A?", "b": "B?"}, 2, backend=first)
    again = ScriptedModel()
    answers = ask(store, "judge", SERVED, None, {"a": "A?", "b": "B?", "c": "C?"}, 3, backend=again)
    assert first.asked == [("a", (0, 1)), ("b", (0, 1))]
    assert again.asked == [("a", (2,)), ("b", (2,)), ("c", (0, 1, 2))]
    assert len(answers.completions) == 9 and answers.spend.samples == 5


def test_a_server_that_ignores_n_is_kept_and_reported_not_fatal(tmp_path):
    store = open_store(str(tmp_path / "s.sqlite"))
    answers = ask(store, "rollout", SERVED, None, {"a": "A?"}, 3, backend=ScriptedModel(per_request=1))
    assert list(answers.completions) == [("a", 0)]  # what came back is stored
    assert answers.rejected == {"a": "returned 1 of the 3 samples asked for"}
