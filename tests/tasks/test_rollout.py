"""The rollout stage on the local backend, over the durable store on SQLite and on PostgreSQL."""

import importlib.util

import pytest

import tasks.llm.local as local_backend
from tasks.llm.config import LLMConfig, SamplingConfig
from tasks.llm.store import open_store
from tasks.models import model_ref
from tasks.pii import RedactConfig
from tasks.rollout import RolloutConfig, rollout
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import read_dataset, write_dataset


@pytest.fixture
def prompts(tmp_path):
    rows = [
        {
            "id": str(i),
            "timestamp": None,
            "slice": "s",
            "prompt": f"What is {i} + 1?",
            "reference": str(i + 1),
            "pii": [],
        }
        for i in range(6)
    ]
    rows.append({**rows[0], "id": "again"})  # the same prompt twice: asked once
    return write_dataset(rows, tmp_path / "prompts.parquet", REDACTED_PROMPTS)


@pytest.fixture
def checkpoint(tiny_teacher):
    return model_ref(str(tiny_teacher))


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


REAL_GENERATE = local_backend.generate
REDACT = RedactConfig(workers=1)
CONFIG = RolloutConfig(samples_per_prompt=3)
TEACHER = LLMConfig(batch_size=2, sampling=SamplingConfig(max_new_tokens=4))


class CountingGenerate:
    """Wraps generate: counts (prompt, n) requests and can fail after some calls, like a dying teacher."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.samples, self.fail_after = 0, 0, fail_after

    def __call__(self, model, tokenizer, prompts, *, n, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise ConnectionError("teacher went away")
        self.calls += 1
        self.samples += len(prompts) * n
        return REAL_GENERATE(model, tokenizer, prompts, n=n, **kwargs)


def _stored_keys(store) -> list[tuple]:
    cursor = store.db.cursor()
    cursor.execute("SELECT request_id, sample_index, fingerprint FROM requests WHERE purpose = 'rollout'")
    return cursor.fetchall()


def test_a_crash_mid_run_costs_only_the_missing_samples(prompts, checkpoint, store, tmp_path, monkeypatch):
    dying = CountingGenerate(fail_after=2)  # 2 batches of 2 prompts finish, then the teacher dies
    monkeypatch.setattr(local_backend, "generate", dying)
    with pytest.raises(ConnectionError):
        rollout(CONFIG, REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path / "try1"))
    assert len(_stored_keys(store)) == 4 * 3  # every finished batch was committed before the crash

    resumed = CountingGenerate()
    monkeypatch.setattr(local_backend, "generate", resumed)
    result = rollout(CONFIG, REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path / "try2"))
    assert resumed.samples == 2 * 3  # only the 2 prompts that never finished
    keys = _stored_keys(store)
    assert len(keys) == len(set(keys)) == 6 * 3  # every (prompt, sample) exactly once
    rows = read_dataset(result.rollouts)
    assert len(rows) == 6 * 3 and {r["prompt"] for r in rows} == {f"What is {i} + 1?" for i in range(6)}
    assert result.report.metrics["samples_from_store"] == 4 * 3
    assert result.report.dropped == {"repeated_prompt": 1, "too_long": 0, "teacher_rejected": 0}


def test_a_new_fingerprint_means_new_rollouts_and_more_samples_cost_only_the_new(
    prompts, checkpoint, store, tmp_path, monkeypatch
):
    counter = CountingGenerate()
    monkeypatch.setattr(local_backend, "generate", counter)
    rollout(CONFIG, REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path / "a"))
    assert counter.samples == 6 * 3

    counter.samples = 0
    rollout(RolloutConfig(samples_per_prompt=5), REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path / "b"))
    assert counter.samples == 6 * 2  # samples 3 and 4 only

    counter.samples = 0
    hotter = TEACHER.model_copy(update={"sampling": SamplingConfig(max_new_tokens=4, temperature=1.2)})
    result = rollout(CONFIG, REDACT, hotter, checkpoint, prompts, store, str(tmp_path / "c"))
    assert counter.samples == 6 * 3  # a different teacher fingerprint never reuses the old samples
    assert len({r["teacher"] for r in read_dataset(result.rollouts)}) == 1
    assert len({fingerprint for _, _, fingerprint in _stored_keys(store)}) == 2


def test_the_api_key_comes_from_a_prefect_secret_block_before_the_environment(prefect_server, monkeypatch):
    from prefect.blocks.system import Secret

    from tasks.llm.config import ServerConfig
    from tasks.llm.http import resolve_api_key

    Secret(value="sk-from-block").save("teacher-key", overwrite=True)
    monkeypatch.setenv("TEACHER_KEY", "sk-from-env")
    assert (
        resolve_api_key(ServerConfig(api_key_env="TEACHER_KEY", api_key_secret_block="teacher-key")) == "sk-from-block"
    )
    assert resolve_api_key(ServerConfig(api_key_env="TEACHER_KEY")) == "sk-from-env"
    assert resolve_api_key(ServerConfig(api_key_env=None)) is None


def test_the_vllm_backend_without_vllm_says_what_to_do(prompts, checkpoint, tmp_path):
    if importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")  # our environment has none by design
    store = open_store(str(tmp_path / "s.sqlite"))
    with pytest.raises(ImportError, match="backend 'vllm' needs vLLM"):
        rollout(
            CONFIG, REDACT, TEACHER.model_copy(update={"backend": "vllm"}), checkpoint, prompts, store, str(tmp_path)
        )


def test_local_backend_keeps_a_logprob_per_generated_token(prompts, checkpoint, tmp_path):
    teacher = TEACHER.model_copy(update={"sampling": SamplingConfig(max_new_tokens=4, logprobs=0)})
    store = open_store(str(tmp_path / "s.sqlite"))
    rows = read_dataset(rollout(CONFIG, REDACT, teacher, checkpoint, prompts, store, str(tmp_path)).rollouts)
    assert rows and all(len(r["logprobs"]) == r["completion_tokens"] > 0 for r in rows)
    assert all(lp <= 0 for r in rows for lp in r["logprobs"])


def test_teacher_answers_are_redacted_after_the_prompts_placeholders():
    """A teacher echoes the placeholder it was shown, and may add PII of its own: that is redacted too,
    numbered after the prompt's, while the reference answer (the task) stays even when it looks like a number."""
    from tasks.pii import Redactor
    from tasks.rollout import _redact_answers

    rows = [
        {
            "prompt": "Hi, <PERSON_1> here. What is 123456789 + 987654321?",
            "reference": "1111111110",
            "completion": "Hello <PERSON_1>! It is 1111111110. Ask Dr. Ingrid Solberg at ingrid@clinic.no.",
            "reasoning": "Add them. Ingrid Solberg can check it.",
        },
        {"prompt": "Capital of Peru?", "reference": "Lima", "completion": "Lima.", "reasoning": None},
    ]
    assert _redact_answers(Redactor(REDACT), rows) == 1
    assert rows[0]["completion"] == "Hello <PERSON_1>! It is 1111111110. Ask Dr. <PERSON_2> at <EMAIL_ADDRESS_1>."
    assert rows[0]["reasoning"] == "Add them. <PERSON_2> can check it."
    assert rows[1]["completion"] == "Lima." and rows[1]["reasoning"] is None


def test_a_prompt_over_the_teacher_s_context_is_refused_before_any_call(checkpoint, store, tmp_path, monkeypatch):
    """The tiny teacher's context is 512 tokens: a 600-word prompt never reaches it; the others are answered."""
    rows = [{"id": str(i), "timestamp": None, "slice": "s", "prompt": f"What is {i} + 1?", "reference": None}
            for i in range(3)]  # fmt: skip
    rows.append({**rows[0], "id": "long", "prompt": "word " * 600})
    prompts = write_dataset(rows, tmp_path / "p.parquet", REDACTED_PROMPTS)
    counting = CountingGenerate()
    monkeypatch.setattr(local_backend, "generate", counting)
    result = rollout(CONFIG, REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path / "out"))
    [refused] = read_dataset(result.rejected)
    assert refused["prompt"].startswith("word word") and refused["reason"].startswith("too_long: ")
    assert "over the teacher's context of 512 less teacher.sampling.max_new_tokens 4" in refused["reason"]
    assert result.report.dropped["too_long"] == 1 and len(read_dataset(result.rollouts)) == 3 * 3
    assert counting.samples == 3 * 3  # only the three short prompts were sampled


def test_the_rollouts_dataset_holds_the_teacher_s_answers_redacted(prompts, checkpoint, store, tmp_path, monkeypatch):
    """A teacher that invents PII in every answer: the rollout stage writes it redacted."""
    from tasks.llm.types import Completion

    def inventing(model, tokenizer, prompts, *, n, **kwargs):
        said = "Ask Dr. Ingrid Solberg at ingrid@clinic.no."
        return [[Completion(said, "stop", 3, 9, reasoning="Ingrid Solberg knows.")] * n for _ in prompts]

    monkeypatch.setattr(local_backend, "generate", inventing)
    rows = read_dataset(rollout(CONFIG, REDACT, TEACHER, checkpoint, prompts, store, str(tmp_path)).rollouts)
    assert rows and all(r["completion"] == "Ask Dr. <PERSON_1> at <EMAIL_ADDRESS_1>." for r in rows)
    assert all(r["reasoning"] == "<PERSON_1> knows." for r in rows)
