"""The whole flow on a tiny random teacher, twice, against a real (temporary) Prefect API."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.distill import DistillConfig, distill
from tasks.evaluate import EvaluateConfig
from tasks.export import ExportConfig
from tasks.filter import FilterConfig
from tasks.gate import GateConfig
from tasks.judge import JudgeConfig
from tasks.llm.config import LLMConfig, SamplingConfig
from tasks.llm.local import generate
from tasks.models import END_OF_TURN, load_model
from tasks.rollout import RolloutConfig
from tasks.serve import ServeConfig
from tasks.source import SourceConfig
from tasks.train import TrainConfig
from tasks.verifiers import Number, VerifyConfig

# the stage tasks in DAG order, with the folder each writes under the work dir
STAGES = {
    "source_prompts": "source",
    "redact_prompts": "redact",
    "decontaminate_prompts": "decontaminate",
    "rollout_teacher": "rollout",
    "verify_rollouts": "verify",
    "dedup_rollouts": "dedup",
    "filter_rollouts": "filter",
    "train_student": "train",
    "evaluate_models": "evaluate",
    "export_student": "export",
}
STAGE_TASKS = set(STAGES)
SUMMARIES = (
    "source", "coverage", "redact", "decontaminate", "rollout", "verify", "dedup", "funnel", "filter", "train",
    "evaluate", "export", "serve", "gate",
)  # fmt: skip


@pytest.fixture(scope="module")
def runs(prefect_server, tiny_teacher, demo_log, tmp_path_factory):
    """The same config run twice: (config, [(flow_run_id, summary), ...], prefect result storage)."""
    log, _ = demo_log
    config = DistillConfig(
        work_dir=str(tmp_path_factory.mktemp("work")),
        teacher=LLMConfig(model=str(tiny_teacher), sampling=SamplingConfig(max_new_tokens=8)),
        source=SourceConfig(path=str(log), sample_size=24, eval_size=8),
        rollout=RolloutConfig(samples_per_prompt=2),
        # a random teacher is never right: verify one slice only (its rows are dropped), keep the rest unverified
        verify=VerifyConfig(by_slice={"arithmetic": Number()}),
        filter=FilterConfig(drop_truncated=False),
        train=TrainConfig(epochs=1, batch_size=4, eval_every_steps=2),
        evaluate=EvaluateConfig(max_new_tokens=8, latency_prompts=2),
        export=ExportConfig(calibration_rows=8, check_prompts=2, max_new_tokens=8),
        serve=ServeConfig(check="off"),
        gate=GateConfig(min_transfer_ratio=0.0),
        judge=JudgeConfig(win_rate=True, max_new_tokens=4),
    )
    results = []
    for _ in range(2):
        state = distill(config, return_state=True)
        results.append((state.state_details.flow_run_id, state.result()))
    return config, results, prefect_server


def _task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state_name for run in task_runs}  # "source_prompts-616"


def _mlflow(config) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{Path(config.work_dir).resolve() / 'mlflow.db'}")


def _artifact_dir(client: MlflowClient, run_id: str) -> Path:
    return Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))


def _texts_under(root: Path):
    """(path, text) for every file at or under root: Parquet as its values (it is compressed), others as bytes."""
    for path in [root] if root.is_file() else root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            yield path, "\n".join(str(v) for row in pq.read_table(path).to_pylist() for v in row.values())
        else:
            yield path, path.read_bytes().decode("utf-8", errors="ignore")


def test_quarantine_logged_to_mlflow_holds_exactly_the_malformed_rows(runs, demo_log):
    config, [(_, summary), _], _ = runs
    _, traffic = demo_log
    quarantine = pq.read_table(_artifact_dir(_mlflow(config), summary.mlflow_run_id) / "redact" / "quarantine.parquet")
    assert set(quarantine.column("row").to_pylist()) == traffic.malformed_lines


def test_no_planted_pii_after_redaction_anywhere(runs, demo_log):
    config, results, prefect_storage = runs
    _, traffic = demo_log
    work = Path(config.work_dir)
    # everything after the source stage: rollouts, the rollout store, training rows, models, MLflow (db and
    # artifacts), and Prefect's persisted results; only the source stage's own copy of the log holds PII
    roots = [p for p in work.iterdir() if p.name != "source"] + [Path(prefect_storage)]
    leaks = [
        (str(path), pii) for root in roots for path, text in _texts_under(root) for pii in traffic.pii if pii in text
    ]
    assert leaks == []
    rollout_files = list((work / "rollout").rglob("rollouts.parquet")) + list((work / "filter").rglob("rows.parquet"))
    assert rollout_files and all(pq.read_table(f).num_rows for f in rollout_files)  # the scan saw real rows
    with get_client(sync_client=True) as client:
        for flow_run_id, _ in results:
            artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            assert {a.key for a in artifacts} >= {f"{s}-summary" for s in SUMMARIES}
            assert not [pii for a in artifacts for pii in traffic.pii if pii in str(a.data)]


def test_second_run_is_served_from_cache_and_tracked_in_full(runs):
    config, [(first_id, first), (second_id, second)], _ = runs
    assert {name: state for name, state in _task_states(first_id).items() if name in STAGE_TASKS} == dict.fromkeys(
        STAGE_TASKS, "Completed"
    )
    assert {name: state for name, state in _task_states(second_id).items() if name in STAGE_TASKS} == dict.fromkeys(
        STAGE_TASKS, "Cached"
    )
    assert _task_states(first_id)["serve_export"] == "Completed" and _task_states(second_id)["serve_export"] == "Cached"
    assert second.exported_uri == first.exported_uri and second.scores == first.scores
    client = _mlflow(config)
    for summary in (first, second):
        run = client.get_run(summary.mlflow_run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["rollout.samples_per_prompt"] == "2"
        assert run.data.metrics["source.dropped.malformed"] == 8
        assert {"rollout.rollouts", "filter.rows", "evaluate.answers"} <= {
            d.dataset.name for d in run.inputs.dataset_inputs
        }
        summaries = {a.path for a in client.list_artifacts(summary.mlflow_run_id, "summaries")}
        assert {f"summaries/{s}.md" for s in SUMMARIES} <= summaries
        # the training curves as step metrics and a plot; the judge's win-rate (its pairs from the store)
        curve = client.get_metric_history(summary.mlflow_run_id, "train.curve.eval_loss")
        steps = sorted(m.step for m in curve)
        assert len(steps) >= 2 and steps[0] > 0 and len(set(steps)) == len(steps)
        assert "train/curves.png" in {a.path for a in client.list_artifacts(summary.mlflow_run_id, "train")}
        assert run.data.metrics["evaluate.judge.pairs"] == 8  # source.eval_size
        assert summary.win_rate.startswith("judge win-rate, student vs teacher:")
        # the demo log carries production's answers: the student is compared with them on the held-out prompts
        assert run.data.metrics["evaluate.shadow.prompts"] >= 1 and "evaluate.shadow.agreement.all" in run.data.metrics
        assert summary.shadow.startswith("shadow: student agrees with production on")


def test_the_student_is_registered_and_the_export_loads_and_generates(runs):
    config, [(_, first), (_, second)], _ = runs
    client = _mlflow(config)
    versions = [client.get_model_version("redistill-student", s.promotion.version) for s in (first, second)]
    assert [v.run_id for v in versions] == [first.mlflow_run_id, second.mlflow_run_id]
    assert versions[0].source == f"runs:/{first.mlflow_run_id}/student"
    assert (_artifact_dir(client, first.mlflow_run_id) / "student" / "config.json").exists()
    model, tokenizer = load_model(first.exported_uri)
    [[completion]] = generate(model, tokenizer, ["What is 2 + 2?"], max_new_tokens=4)
    assert completion.completion_tokens > 0
    # whoever loads the export (vLLM, plain transformers) stops where the teacher stops
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert tokenizer.eos_token == END_OF_TURN and model.generation_config.eos_token_id == end_of_turn
    assert first.scores["student"].params < first.scores["teacher"].params


# ----------------------------------------------------------------------------- cache keys by content
def _outputs(work: Path) -> dict[str, dict[str, str]]:
    """Per stage folder under a work dir: {content key: digest of every file in it}."""
    import hashlib

    found: dict[str, dict[str, str]] = {}
    for stage in STAGES.values():
        for folder in sorted((work / stage).glob("*")) if (work / stage).is_dir() else []:
            sha = hashlib.sha256()
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                sha.update(file.relative_to(folder).as_posix().encode() + file.read_bytes())
            found.setdefault(stage, {})[folder.name] = sha.hexdigest()
    return found


def _rerun(config, **changes):
    """The run with `changes`, in a fresh work dir: (task states by name, the stage folders it wrote)."""
    state = distill(config.model_copy(update=changes), return_state=True)
    assert state.is_completed(), state.message
    work = Path(changes["work_dir"])
    return _task_states(state.state_details.flow_run_id), _outputs(work)


def _assert_recomputed_from(stage_task: str, states: dict[str, str], written: dict, baseline: dict) -> None:
    """Every stage before `stage_task` served from cache; it and every one after it recomputed, each with
    outputs unlike the first run's."""
    order = list(STAGES)
    before, after = order[: order.index(stage_task)], order[order.index(stage_task) :]
    assert {name: states[name] for name in order} == {
        **dict.fromkeys(before, "Cached"),
        **dict.fromkeys(after, "Completed"),
    }
    assert set(written) == {STAGES[name] for name in after}  # only what recomputed wrote anything here
    for name in after:
        [(key, digest)] = written[STAGES[name]].items()
        assert key not in baseline[STAGES[name]], name
        # a tiny random student may answer the held-out prompts the same after other training data; new verdicts
        # need not change which sample of a group dedup keeps
        if name not in ("evaluate_models", "dedup_rollouts"):
            assert digest not in baseline[STAGES[name]].values(), name


def test_the_same_run_in_another_work_dir_is_served_from_cache(runs, tmp_path):
    config, _, _ = runs
    states, written = _rerun(config, work_dir=str(tmp_path / "elsewhere"))
    assert {name: states[name] for name in STAGES} == dict.fromkeys(STAGES, "Cached")
    assert written == {}  # no stage computed anything again


def test_a_changed_filter_field_recomputes_filter_and_after_only(runs, tmp_path):
    config, _, _ = runs
    baseline = _outputs(Path(config.work_dir))
    [kept] = (Path(config.work_dir) / "filter").rglob("rows.parquet")  # what training got: drop one of those
    shortest = min(len(m[-1]["content"]) for m in pq.read_table(kept).column("messages").to_pylist())
    stricter = config.filter.model_copy(update={"min_chars": shortest + 1})  # drops at least one answer
    states, written = _rerun(config, work_dir=str(tmp_path / "w"), filter=stricter)
    _assert_recomputed_from("filter_rollouts", states, written, baseline)


def test_one_line_of_verifier_code_recomputes_verify_and_after_only(runs, tmp_path, monkeypatch):
    import tasks.cache
    import tasks.verifiers.number as number
    from tasks.verifiers.base import Verdict

    config, _, _ = runs
    baseline = _outputs(Path(config.work_dir))
    # the edit: the number verifier accepts every answer (so the filter keeps the arithmetic rows it dropped)
    monkeypatch.setattr(number.Number, "verify", lambda self, answer, row: Verdict.of(True, "accepted"))
    real_source = tasks.cache.module_source
    edited = lambda module: real_source(module) + ("\nACCEPT_ALL = True\n" if module is number else "")  # noqa: E731
    monkeypatch.setattr(tasks.cache, "module_source", edited)
    states, written = _rerun(config, work_dir=str(tmp_path / "w"))
    _assert_recomputed_from("verify_rollouts", states, written, baseline)


def test_rows_added_to_the_log_recompute_everything(runs, demo_log, tmp_path):
    from tasks.demo_traffic import generate_traffic

    config, _, _ = runs
    baseline = _outputs(Path(config.work_dir))
    log, _ = demo_log
    more = [line for line in generate_traffic(rows=20, seed=7, malformed=0).lines]
    grown = tmp_path / "grown.jsonl"
    grown.write_text(log.read_text() + "\n".join(line.replace('"req-', '"new-') for line in more) + "\n")
    source = config.source.model_copy(update={"path": str(grown)})
    states, written = _rerun(config, work_dir=str(tmp_path / "w"), source=source)
    _assert_recomputed_from("source_prompts", states, written, baseline)


def test_a_cached_result_whose_outputs_are_gone_is_computed_again(runs, tmp_path):
    import shutil

    config, _, _ = runs
    looser = config.export.model_copy(update={"max_accuracy_drop": 0.2})  # recomputes the export alone
    states, written = _rerun(config, work_dir=str(tmp_path / "first"), export=looser)
    assert set(written) == {"export"} and states["export_student"] == "Completed"
    shutil.rmtree(tmp_path / "first")  # the work dir the cached export points at is deleted
    state = distill(
        config.model_copy(update={"work_dir": str(tmp_path / "second"), "export": looser}), return_state=True
    )
    assert state.is_completed(), state.message
    assert state.result().exported_uri.startswith(str(tmp_path / "second"))  # recomputed here, not a dangling ref
    assert set(_outputs(tmp_path / "second")) == {"export"}


def test_a_failed_deploy_check_is_tried_again_without_quantizing_again(runs, tmp_path, monkeypatch):
    config, _, _ = runs
    monkeypatch.setenv("REDISTILL_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    strict = config.model_copy(update={"work_dir": str(tmp_path / "w"), "serve": ServeConfig(check="on")})
    states = []
    for _ in range(2):
        state = distill(strict, return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary.export_check.startswith("FAILED: ")
        assert "serve.check is 'on' but vLLM's environment is missing" in summary.export_check
        assert not summary.promotion.challenger and "the export failed its check" in summary.promotion.reason
        with get_client(sync_client=True) as client:
            flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            states.append(sorted((r.name.rsplit("-", 1)[0], r.state_name) for r in client.read_task_runs(
                flow_run_filter=flow_run) if r.name.startswith(("export_student", "serve_export"))))  # fmt: skip
    assert states[0] == [("export_student", "Cached"), ("serve_export", "Completed")]
    # the second run: the export from the cache, the failed check found there and tried again
    assert states[1] == [("export_student", "Cached"), ("serve_export", "Cached"), ("serve_export", "Completed")]


# ----------------------------------------------------------------------------- chat request logs
def test_a_log_of_chat_messages_rows_distils_end_to_end(runs, tmp_path):
    """Production traffic logged as OpenAI-style `messages`: the teacher, the student and the export are asked
    the whole conversation, and the training rows keep it, redacted turn by turn."""
    config, _, _ = runs
    rows = []
    for i in range(24):
        turns = [
            {"role": "system", "content": "You are the support desk of Acme."},
            {"role": "user", "content": f"Hi, I'm Aiko Tanaka. Question {i}: what is {i} + 3?"},
            {"role": "assistant", "content": "Sure, which number?"},
            {"role": "user", "content": f"{i} + 3, please."},
        ]
        rows.append(json.dumps({"id": f"c{i}", "slice": "chat", "messages": turns, "reference": str(i + 3)}))
    (tmp_path / "chat.jsonl").write_text("\n".join(rows) + "\n")
    chat = config.model_copy(
        update={
            "work_dir": str(tmp_path / "work"),
            "source": SourceConfig(path=str(tmp_path / "chat.jsonl"), sample_size=12, eval_size=4),
            "verify": VerifyConfig(by_slice={"chat": Number()}),
            "filter": FilterConfig(drop_truncated=False, verify=False),  # a random teacher is never right
        }
    )
    state = distill(chat, return_state=True)
    assert state.is_completed(), state.message
    [training] = (tmp_path / "work" / "filter").rglob("rows.parquet")
    trained_on = pq.read_table(training).column("messages").to_pylist()
    assert trained_on and all([m["role"] for m in t] == ["system", "user", "assistant", "user", "assistant"]
                              for t in trained_on)  # fmt: skip
    assert all("<PERSON_1>" in t[1]["content"] and "Aiko" not in str(t) for t in trained_on)
    [answers] = (tmp_path / "work" / "evaluate").rglob("answers.parquet")
    assert {a["model"] for a in pq.read_table(answers).to_pylist()} == {"base", "teacher", "student"}


def test_a_judged_slice_is_scored_and_the_funnel_accounts_for_every_sample(runs, tmp_path):
    """The judge scores one slice (a random teacher judges at random: uncalibrated, said so); per slice, the
    teacher's samples less every drop the funnel lists are the training rows, and the prompts in less every
    prompt drop are the prompts the teacher was asked."""
    from tasks.judge import JudgeConfig

    config, _, _ = runs
    judged = config.model_copy(
        update={
            "work_dir": str(tmp_path / "work"),
            "stop_after": "filter",
            "judge": JudgeConfig(slices=["capitals"], allow_uncalibrated=True, uncalibrated_threshold=3),
        }
    )
    stopped = distill(judged, return_state=True).result()
    run = _mlflow(judged).get_run(stopped.mlflow_run_id)
    metrics = run.data.metrics
    assert metrics["judge.rows_in"] == metrics["funnel.teacher_samples.capitals"] > 0
    assert "uncalibrated" in (_artifact_dir(_mlflow(judged), run.info.run_id) / "summaries" / "judge.md").read_text()
    funnel = {k.removeprefix("funnel."): v for k, v in metrics.items() if k.startswith("funnel.")}
    slices = {k.rsplit(".", 1)[1] for k in funnel if k.startswith("training_rows.")}
    for name in slices | {"all"}:
        prompt_drops = sum(v for k, v in funnel.items() if k.startswith(("decontaminate.", "rollout.")) and
                           k.endswith(f".{name}"))  # fmt: skip
        sample_drops = sum(
            v for k, v in funnel.items() if k.startswith(("dedup.", "filter.")) and k.endswith(f".{name}")
        )
        assert funnel[f"prompts_in.{name}"] - prompt_drops == funnel.get(f"teacher_samples.{name}", 0) / 2  # N = 2
        assert funnel.get(f"teacher_samples.{name}", 0) - sample_drops == funnel[f"training_rows.{name}"]
    assert metrics["filter.rows_out"] == funnel["training_rows.all"]
    artifacts = {a.path for a in _mlflow(judged).list_artifacts(run.info.run_id, "funnel")}
    assert artifacts == {"funnel/funnel.png"}


# ----------------------------------------------------------------------------- more than one student
def test_two_sizes_and_dpo_are_scored_side_by_side_and_the_smallest_that_clears_the_bar_ships(
    runs, tmp_path, monkeypatch
):
    """A 1-layer prune beside the 2-layer one, each followed by DPO on verifier pairs: all four are scored on
    the same prompts, the smallest that clears the bar is exported and registered, named in the registry."""
    import tasks.cache
    import tasks.verifiers.number as number
    from flows.cli import render_summary
    from tasks.dpo import PreferenceConfig
    from tasks.student import StudentConfig
    from tasks.verifiers.base import Verdict

    config, _, _ = runs
    # a random teacher is never right: here an answer of even length is, so a prompt gets right and wrong samples
    monkeypatch.setattr(number.Number, "verify", lambda self, answer, row: Verdict.of(len(answer) % 2 == 0, "parity"))
    real_source = tasks.cache.module_source
    edited = lambda module: real_source(module) + ("\nPARITY = True\n" if module is number else "")  # noqa: E731
    monkeypatch.setattr(tasks.cache, "module_source", edited)
    several = config.model_copy(
        update={
            "work_dir": str(tmp_path / "work"),
            "rollout": RolloutConfig(samples_per_prompt=4),
            "student": StudentConfig(sizes=[{"name": "one", "keep_layers": [0]}]),
            "dpo": PreferenceConfig(enabled=True, min_pairs=1, batch_size=2),
            "judge": JudgeConfig(),
        }
    )
    state = distill(several, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert list(summary.scores) == ["base", "teacher", "student", "student_one", "student_dpo", "student_one_dpo"]
    sizes = {name: score.params for name, score in summary.scores.items() if name.startswith("student")}
    assert sizes["student_one"] == sizes["student_one_dpo"] < sizes["student"] == sizes["student_dpo"]
    assert summary.student in ("student_one", "student_one_dpo")  # the smaller pair; of the two, the better
    assert load_model(summary.exported_uri)[0].config.num_hidden_layers == 1
    client = _mlflow(several)
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["redistill.student"] == summary.student
    version = client.get_model_version("redistill-student", summary.promotion.version)
    assert version.tags["student"] == summary.student
    metrics = run.data.metrics
    assert metrics["dpo.pairs"] == metrics["dpo.student_one.pairs"] > 0 and metrics["dpo.steps"] > 0
    assert metrics["train.student_one.rows_in"] == metrics["train.rows_in"]  # the same training rows
    assert {"evaluate.student_one.accuracy.all", "evaluate.student_one_dpo.transfer_ratio.all"} <= set(metrics)
    summaries = _artifact_dir(client, summary.mlflow_run_id) / "summaries"
    assert "(ships)" in (summaries / "students.md").read_text()
    [answers] = (tmp_path / "work" / "evaluate").rglob("answers.parquet")
    by_model = {}
    for row in pq.read_table(answers).to_pylist():
        by_model.setdefault(row["model"], []).append(row["id"])
    production = set(by_model.pop("production"))  # its answers, where the log has them (the shadow report)
    assert len({tuple(sorted(ids)) for ids in by_model.values()}) == 1 and len(by_model) == 6  # the same prompts
    assert production and production <= set(by_model["student"])
    table = render_summary(summary)
    assert f"{summary.student} 95%" in table and "student_one_dpo" in table


def test_synthetic_prompts_for_thin_clusters_are_answered_and_a_selection_budget_is_exact(runs, tmp_path, monkeypatch):
    """One run for two features: synthesis (a scripted teacher writes the prompts: a random one writes none that
    pass) and a selection budget of 5 rows, the funnel accounting for the rest."""
    from tasks import synthesize
    from tasks.selection import SelectionConfig
    from tasks.synthesize import Reply, SynthesisConfig

    def rewrite(writer, requests, n, progress):  # a seed, with a constraint added: new, and of its cluster
        seed = {rid: re.findall(r"^- (.*)$", text, re.MULTILINE)[0] for rid, text in requests.items()}
        return {(rid, i): Reply(f"{seed[rid]} Answer in exactly {i + 3} words.") for rid in requests for i in range(n)}

    monkeypatch.setattr(synthesize.Writer, "replies", rewrite)
    config, _, _ = runs
    synthesis = SynthesisConfig(enabled=True, fill_to=4, evolve_depth=0, near_duplicate=0.995, max_share=0.25)
    budgeted = config.model_copy(
        update={
            "work_dir": str(tmp_path / "work"),
            "stop_after": "selection",
            "selection": SelectionConfig(budget=5),
            "synthesis": synthesis,
        }  # fmt: skip
    )
    stopped = distill(budgeted, return_state=True).result()
    assert stopped.stage == "selection"
    client = _mlflow(budgeted)
    metrics = client.get_run(stopped.mlflow_run_id).data.metrics
    made = metrics["synthesize.synthetic_prompts"]
    assert 0 < made <= 8 and metrics["synthesize.training_prompts_after"] == 24 + made  # 25 % of 32: at most 8
    assert metrics["decontaminate.rows_in"] == 24 + made
    written = pq.read_table(_artifact_dir(client, stopped.mlflow_run_id) / "synthesize" / "synthetic.parquet")
    new = {row["prompt"] for row in written.to_pylist() if row["kept"]}
    assert len(new) == made
    answered = set(pq.read_table(stopped.datasets["rollout.rollouts"]).column("prompt").to_pylist())
    decontaminated = set(pq.read_table(stopped.datasets["decontaminate.rejected"]).column("prompt").to_pylist())
    assert new <= answered | decontaminated and new & answered  # as real prompts are: checked, then answered
    held_out = pq.read_table(stopped.datasets["redact.eval_prompts"]).column("prompt").to_pylist()
    assert not new & set(held_out)
    assert metrics["selection.rows_out"] == metrics["funnel.training_rows.all"] == 5
    assert metrics["funnel.selection.not_selected.all"] == metrics["filter.rows_out"] - 5
