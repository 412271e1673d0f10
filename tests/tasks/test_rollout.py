import importlib.util
import sqlite3

import pytest

import tasks.models as models_module
from tasks.models import ModelRef, fingerprint_checkpoint
from tasks.rollout import RolloutConfig, RolloutStore, missing_samples, rollout, store_rows
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import read_dataset, write_dataset
from tasks.teachers import Ask, Completion, SamplingConfig


@pytest.fixture
def prompts(tmp_path):
    rows = [
        {
            "id": str(i),
            "timestamp": None,
            "slice": "s",
            "prompt": f"What is {i} + 1?",
            "reference": str(i + 1),
            "split": "train",
            "pii": [],
        }
        for i in range(6)
    ]
    rows.append({**rows[0], "id": "again"})  # the same prompt twice: asked once
    rows.append({**rows[1], "id": "held", "prompt": "held out", "split": "eval"})
    return write_dataset(rows, tmp_path / "prompts.parquet", REDACTED_PROMPTS)


@pytest.fixture
def teacher(tiny_teacher):
    return ModelRef(path=str(tiny_teacher), fingerprint=fingerprint_checkpoint(tiny_teacher))


REAL_GENERATE = models_module.generate
CONFIG = RolloutConfig(samples_per_prompt=3, batch_size=2, sampling=SamplingConfig(max_new_tokens=4))


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


def _stored(store_path) -> list[tuple]:
    with sqlite3.connect(store_path) as db:
        return db.execute("SELECT prompt_id, sample_index, teacher FROM rollouts").fetchall()


def test_store_keeps_the_first_write_with_reasoning_and_logprobs(tmp_path):
    store = RolloutStore(tmp_path / "store.sqlite")
    first = Completion("7", "stop", 12, 3, reasoning="3 + 4 is 7", logprobs=[-0.5, -0.25, -0.125])
    store.add(store_rows(Ask("p", "What is 3 + 4?", (0,)), [first], "t"))
    store.add(store_rows(Ask("p", "What is 3 + 4?", (0,)), [Completion("8", "stop", 12, 1)], "t"))
    stored = store.get("t", ["p"])[("p", 0)]
    assert (stored["completion"], stored["reasoning"], stored["logprobs"]) == ("7", "3 + 4 is 7", [-0.5, -0.25, -0.125])
    assert missing_samples(["p", "q"], 2, store.get("t", ["p", "q"])) == {"p": [1], "q": [0, 1]}
    assert store.get("other-teacher", ["p"]) == {}


def test_a_crash_mid_run_costs_only_the_missing_samples(prompts, teacher, tmp_path, monkeypatch):
    store_path = tmp_path / "rollouts.sqlite"
    dying = CountingGenerate(fail_after=2)  # 2 batches of 2 prompts finish, then the teacher dies
    monkeypatch.setattr(models_module, "generate", dying)
    with pytest.raises(ConnectionError):
        rollout(CONFIG, teacher, prompts, store_path, tmp_path / "try1")
    assert len(_stored(store_path)) == 4 * 3  # every finished batch was committed before the crash

    resumed = CountingGenerate()
    monkeypatch.setattr(models_module, "generate", resumed)
    result = rollout(CONFIG, teacher, prompts, store_path, tmp_path / "try2")
    assert resumed.samples == 2 * 3  # only the 2 prompts that never finished
    keys = _stored(store_path)
    assert len(keys) == len(set(keys)) == 6 * 3  # every (prompt, sample) exactly once
    rows = read_dataset(result.rollouts)
    assert len(rows) == 6 * 3 and {r["prompt"] for r in rows} == {f"What is {i} + 1?" for i in range(6)}
    assert result.report.metrics["samples_from_store"] == 4 * 3
    assert result.report.dropped == {"repeated_prompt": 1, "teacher_rejected": 0}


def test_a_new_fingerprint_means_new_rollouts_and_more_samples_cost_only_the_new(
    prompts, teacher, tmp_path, monkeypatch
):
    store_path = tmp_path / "rollouts.sqlite"
    counter = CountingGenerate()
    monkeypatch.setattr(models_module, "generate", counter)
    rollout(CONFIG, teacher, prompts, store_path, tmp_path / "a")
    assert counter.samples == 6 * 3

    counter.samples = 0
    rollout(CONFIG.model_copy(update={"samples_per_prompt": 5}), teacher, prompts, store_path, tmp_path / "b")
    assert counter.samples == 6 * 2  # samples 3 and 4 only

    counter.samples = 0
    hotter = CONFIG.model_copy(update={"sampling": SamplingConfig(max_new_tokens=4, temperature=1.2)})
    result = rollout(hotter, teacher, prompts, store_path, tmp_path / "c")
    assert counter.samples == 6 * 3  # a different teacher fingerprint never reuses the old samples
    assert len({r["teacher"] for r in read_dataset(result.rollouts)}) == 1
    assert len({t for _, _, t in _stored(store_path)}) == 2


def test_the_api_key_comes_from_a_prefect_secret_block_before_the_environment(prefect_server, monkeypatch):
    from prefect.blocks.system import Secret

    from tasks.teachers import ServerConfig, resolve_api_key

    Secret(value="sk-from-block").save("teacher-key", overwrite=True)
    monkeypatch.setenv("TEACHER_KEY", "sk-from-env")
    assert (
        resolve_api_key(ServerConfig(api_key_env="TEACHER_KEY", api_key_secret_block="teacher-key")) == "sk-from-block"
    )
    assert resolve_api_key(ServerConfig(api_key_env="TEACHER_KEY")) == "sk-from-env"
    assert resolve_api_key(ServerConfig(api_key_env=None)) is None


def test_the_vllm_backend_without_vllm_says_what_to_do(prompts, teacher, tmp_path):
    if importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")  # our environment has none by design
    with pytest.raises(ImportError, match="rollout.backend 'vllm' needs vLLM"):
        rollout(CONFIG.model_copy(update={"backend": "vllm"}), teacher, prompts, tmp_path / "s.sqlite", tmp_path)


def test_local_backend_keeps_a_logprob_per_generated_token(prompts, teacher, tmp_path):
    config = CONFIG.model_copy(update={"sampling": SamplingConfig(max_new_tokens=4, logprobs=0)})
    rows = read_dataset(rollout(config, teacher, prompts, tmp_path / "s.sqlite", tmp_path).rollouts)
    assert rows and all(len(r["logprobs"]) == r["completion_tokens"] > 0 for r in rows)
    assert all(lp <= 0 for r in rows for lp in r["logprobs"])


def test_a_store_with_another_layout_is_refused_not_misread(tmp_path):
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        db.execute("CREATE TABLE rollouts (prompt_id TEXT, sample_index INTEGER, teacher TEXT, completion TEXT)")
    with pytest.raises(RuntimeError, match="move it aside"):
        RolloutStore(tmp_path / "old.sqlite")
