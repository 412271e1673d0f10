import errno

import tasks.evaluate
import tasks.export
import tasks.filter
import tasks.rollout
import tasks.serve
import tasks.train
from tasks.cache import StageInputs, code_text, project_modules, transient
from tasks.refs import DatasetRef, ModelRef


def test_cache_keys_hold_contents_not_places():
    here = DatasetRef(uri="/work/a/rollout/x/rollouts.parquet", rows=3, digest="d1")
    there = DatasetRef(uri="s3://bucket/b/rollout/y/rollouts.parquet", rows=3, digest="d1")
    other = DatasetRef(uri=here.uri, rows=3, digest="d2")
    model = ModelRef(uri="/work/a/models/student", fingerprint="f1")
    key = StageInputs().compute_key
    base = key(None, {"rows": here, "base": model, "work_dir": "/work/a", "store": "/work/a/llm.sqlite"}, {})
    moved = key(None, {"rows": there, "base": model.model_copy(update={"uri": "file:///x"}), "work_dir": "s3://b"}, {})
    assert base == moved  # the same computation in another work dir, or on another machine
    assert base != key(None, {"rows": other, "base": model, "work_dir": "/work/a"}, {})
    assert base != key(None, {"rows": here, "base": model.model_copy(update={"fingerprint": "f2"})}, {})


def test_code_identity_ignores_prose_but_not_code():
    code = '''
def verify(answer: str) -> bool:
    """Whether the answer is right."""
    limit = Field(3, description="How many.")  # why three
    return answer.strip() == "7"
'''
    reworded = code.replace("Whether the answer is right.", "True when right.").replace("# why three", "# see notes")
    redescribed = code.replace("How many.", "How many answers, at most.")
    changed = code.replace('"7"', '"8"')
    assert code_text(code) == code_text(reworded) == code_text(redescribed)
    assert code_text(code) != code_text(changed)


def test_a_stage_cache_key_covers_its_own_family_and_no_other():
    filter_code, train_code = project_modules(tasks.filter), project_modules(tasks.train)
    rollout_code, evaluate_code = project_modules(tasks.rollout), project_modules(tasks.evaluate)
    assert {"tasks.filter", "tasks.schemas", "tasks.stage", "tasks.storage"} <= set(filter_code)
    assert "tasks.train" not in filter_code  # nor is the cache shared with unrelated stages
    # an OpenAI-backend edit re-asks nothing it need not: the rollout and the teacher's scores, never training
    assert "tasks.llm.openai_server" in rollout_code and "tasks.llm.openai_server" in evaluate_code
    # training reads the teacher's top-k from the request store (kd), or has a vLLM server score its rows: a
    # chat-backend or sampling-config edit never retrains the student (an edit of the HTTP retries does)
    llm_layer = sorted(name.removeprefix("tasks.llm.") for name in train_code if name.startswith("tasks.llm."))
    assert llm_layer == ["http", "prompt_logprobs", "served", "store", "types"]
    # the deploy check talks to vLLM's server, the export itself never: a client edit re-quantizes nothing
    export_code, serve_code = project_modules(tasks.export), project_modules(tasks.serve)
    assert "tasks.llm.vllm_server" in serve_code and "tasks.export" not in serve_code
    assert not {"tasks.llm.vllm_server", "tasks.llm.openai_server", "tasks.llm.store"} & set(export_code)
    assert {"tasks.verifiers", "tasks.verifiers.number", "tasks.verifiers.text"} <= set(evaluate_code)


def test_where_a_thing_is_and_how_patiently_it_is_reached_are_not_in_the_key():
    from tasks.llm.config import LLMConfig, SamplingConfig, ServerConfig
    from tasks.source import SourceConfig

    key = StageInputs().compute_key
    assert key(None, {"config": SourceConfig(path="/a/log.jsonl")}, {}) == key(
        None, {"config": SourceConfig(path="/b/moved.jsonl")}, {}
    )  # the log enters by its digest
    served = LLMConfig(backend="openai", model="m", server=ServerConfig(base_url="http://a/v1"))
    elsewhere = served.model_copy(
        update={"server": ServerConfig(base_url="http://b/v1", max_concurrency=64, request_timeout_s=9, max_retries=0)}
    )
    assert key(None, {"teacher": served}, {}) == key(None, {"teacher": elsewhere}, {})
    hotter = served.model_copy(update={"sampling": SamplingConfig(temperature=1.0)})
    assert key(None, {"teacher": served}, {}) != key(None, {"teacher": hotter}, {})  # what is asked still counts
    assert key(None, {"config": SourceConfig(sample_size=10)}, {}) != key(None, {"config": SourceConfig()}, {})


class EndpointConnectionError(Exception):
    """Named like botocore's: `transient` knows the libraries' errors by class name."""


def test_only_outages_are_retried_not_bugs_or_bad_data():
    assert transient(OSError(errno.EREMOTEIO, "We encountered an internal error, please try again."))
    assert transient(ConnectionRefusedError()) and transient(TimeoutError())
    try:
        try:
            raise EndpointConnectionError('Could not connect to the endpoint URL: "http://127.0.0.1:1/bucket"')
        except EndpointConnectionError as e:
            raise RuntimeError("upload failed") from e
    except RuntimeError as wrapped:
        assert transient(wrapped)  # found where it was raised from
    assert not transient(ValueError("bad data")) and not transient(FileNotFoundError(errno.ENOENT, "gone"))
    assert not transient(KeyError("column")) and not transient(None)


def test_outputs_are_checked_at_any_depth_of_a_result(tmp_path):
    """A DPO result names its student's adapter one level down: a deleted adapter is a missing output."""
    from tasks.cache import outputs_intact
    from tasks.dpo import Preferred
    from tasks.models import model_ref
    from tasks.refs import Student
    from tasks.stage import StageReport

    for name in ("base", "adapter"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    student = Student(base=model_ref(str(tmp_path / "base")), adapter=model_ref(str(tmp_path / "adapter")))
    result = Preferred(student=student, pairs=9, report=StageReport(stage="dpo", rows_in=9, rows_out=9))
    assert outputs_intact(result) and outputs_intact({"s": [result]})
    (tmp_path / "adapter" / "config.json").unlink()
    (tmp_path / "adapter").rmdir()
    assert not outputs_intact(result) and not outputs_intact({"s": [result]})
