import pytest

from flows.cli import build_config, main


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "rollout:\n  samples_per_prompt: 6\nteacher:\n  sampling:\n    temperature: 0.9\nsource:\n  sample_size: 50\n"
    )
    config = build_config(
        str(tmp_path / "c.yaml"), {"rollout.samples_per_prompt": "8", "student.keep_layers": "[0, 2, 4]"}
    )
    assert config.rollout.samples_per_prompt == 8  # flag beats file
    assert config.teacher.sampling.temperature == 0.9  # file beats default
    assert config.source.sample_size == 50
    assert config.student.keep_layers == [0, 2, 4]
    assert config.dedup.near_threshold == 0.8  # default


def test_a_bad_value_names_the_field(capsys):
    assert main(["run", "--rollout.samples_per_prompt", "12"]) == 2
    err = capsys.readouterr().err
    assert "rollout.samples_per_prompt" in err and "less than or equal to 8" in err


def test_demo_data_writes_the_log(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "log.jsonl"), "--rows", "50"]) == 0
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 50
    assert "malformed" in capsys.readouterr().out


def test_unknown_flag_is_refused():
    with pytest.raises(SystemExit):
        main(["run", "--rollout.samples", "3"])


def test_an_unknown_key_in_the_file_is_an_error_not_a_silent_default(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("teacher:\n  temperature: 0.9\n")  # belongs under teacher.sampling
    assert main(["run", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "teacher.temperature" in capsys.readouterr().err


def test_sections_that_do_not_fit_together_are_refused_before_anything_runs(tmp_path, capsys):
    served = ["run", "--teacher.backend", "openai", "--teacher.model", "big-teacher"]
    assert main(served) == 2
    assert "set student.prune_from" in capsys.readouterr().err  # nothing to prune: said before any rollout
    assert main([*served, "--student.init", "checkpoint"]) == 2
    assert "needs student.checkpoint" in capsys.readouterr().err
    assert main(["run", "--work_dir", "memory://shared/work"]) == 2
    assert "set request_store" in capsys.readouterr().err


def test_help_lists_every_field_with_its_description(capsys):
    from flows.cli import _leaf_fields
    from flows.distill import DistillConfig

    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for dotted, (description, _) in _leaf_fields(DistillConfig).items():
        assert f"--{dotted}" in shown
        assert " ".join(description.split())[:40] in shown, dotted


def test_text_fields_stay_text_and_other_fields_are_yaml():
    config = build_config(
        None,
        {
            "run_name": "2026-11-23",  # YAML would make it a date
            "teacher.sampling.system_prompt": "no",  # YAML would make it False
            "teacher.sampling.temperature": "0.5",
            "student.keep_layers": "[0, 1]",
            "verify.by_slice": "{math: number}",
            "source.since": "2026-11-20T00:00:00",
        },
    )
    assert config.run_name == "2026-11-23" and config.teacher.sampling.system_prompt == "no"
    assert config.teacher.sampling.temperature == 0.5 and config.student.keep_layers == [0, 1]
    assert config.verify.by_slice["math"].kind == "number" and config.source.since.day == 20


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "No such file or directory"),
        ("rollout:\n  samples_per_prompt: [1\n", "line 3, column 1: not valid YAML"),
        ("- a list\n- of things\n", "holds a list, not a mapping"),
    ],
)
def test_a_missing_or_broken_config_file_is_one_line_naming_it(tmp_path, capsys, text, says):
    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and says in err and "Traceback" not in err


@pytest.mark.parametrize(
    "path, says",
    [
        ("nope.jsonl", "no such file"),
        ("log.txt", "unsupported prompt log format '.txt'"),
        ("s3://logs/2026/11/*.jsonl", "cannot be listed"),
    ],
)
def test_a_log_that_cannot_be_read_is_one_line_and_no_run(tmp_path, capsys, path, says):
    (tmp_path / "log.txt").write_text("hello")
    path = path if "://" in path else str(tmp_path / path)
    assert main(["run", "--source.path", path, "--work_dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "w").exists()  # no MLflow run, no stage ran


def test_nothing_to_distill_stops_after_source_with_the_cause_before_any_model(prefect_server, tmp_path, capsys):
    (tmp_path / "log.jsonl").write_text('{"slice": "s", "prompt": ""}\n{not json\n')
    work = tmp_path / "w"
    assert main(["run", "--source.path", str(tmp_path / "log.jsonl"), "--work_dir", str(work)]) == 2
    err = capsys.readouterr().err
    said = err.strip().splitlines()[-1]  # after Prefect's own log lines
    assert said.startswith("redistill: source: all 2 rows of ") and "1 bad_json" in said and "1 empty" in said
    assert "Traceback" not in err
    assert not (work / "models").exists()  # the teacher was never loaded


def test_a_dry_run_stops_after_redact_and_shows_what_would_reach_the_teacher(
    prefect_server, demo_log, tmp_path, capsys
):
    path, traffic = demo_log
    work = tmp_path / "w"
    assert main(["run", "--source.path", str(path), "--work_dir", str(work), "--stop-after", "redact"]) == 0
    out = capsys.readouterr().out
    assert "## source" in out and "## redact" in out and "## rollout" not in out
    assert (
        "quarantined.bad_json" in out and "entities.PERSON" in out and "train_share." in out
    )  # by reason, type, slice
    assert "redact.train_prompts: " in out and "ended after redact: stopped here, as asked (stop_after)" in out
    assert not (work / "models").exists() and not [p for p in traffic.pii if p in out]


def test_the_closing_table_shows_the_students_interval_speed_memory_and_the_gates_verdict():
    from flows.cli import render_summary
    from flows.distill import DistillSummary
    from tasks.evaluate import ModelScore
    from tasks.gate import Promotion
    from tasks.stats import Interval

    def score(accuracy: float, **more) -> ModelScore:
        fields = {"latency_s": 0.4, "latency_p95_s": 0.9, "tokens_per_s": 30.0, "params": 81_400_000, "size_mb": 326.0}
        return ModelScore(accuracy={"capitals": accuracy, "all": accuracy}, **(fields | more))

    student = score(0.5, interval={"capitals": Interval(value=0.5, low=0.25, high=0.75)}, peak_memory_mb=410.0)
    summary = DistillSummary(
        scores={"base": score(0.0), "teacher": score(0.8, params=None, size_mb=None), "student": student},
        transfer_ratio={"capitals": 0.625, "all": 0.625},
        exported_uri="/work/export/awq",
        exported_mb=147.0,
        export_check="passed: accuracy 0.50 exported vs 0.50 merged; served by vLLM: accuracy 0.50, 90 tokens/s",
        promotion=Promotion(registered_model="s", version="2", promoted=False, reason="not promoted: transfer ratio"),
        mlflow_run_id="abc",
        tracking_uri="sqlite:///x.db",
        stage_seconds={"train": 12.0},
    )
    lines = render_summary(summary).splitlines()
    assert lines[1].split() == ["capitals", "0.00", "0.80", "0.50", "[0.25,", "0.75]", "0.62"]
    assert lines[2].split() == ["all", "0.00", "0.80", "0.50", "0.62"]  # no interval logged for it: none shown
    [student_line] = [line for line in lines if line.startswith("student ")]
    assert student_line.split() == ["student", "81.4", "326", "0.40", "0.90", "30.0", "410"]
    assert "gate: s version 2, not promoted: transfer ratio" in lines
    assert (
        "export check passed: accuracy 0.50 exported vs 0.50 merged; served by vLLM: accuracy 0.50, 90 tokens/s"
        in lines
    )
    shadowed = summary.model_copy(
        update={
            "production_accuracy": {"capitals": 0.7, "all": 0.7},
            "shadow": "shadow: student agrees with production on 60% [40%, 80%] of 10 held-out prompts",
            "shadow_agreement": {"capitals": 0.6},  # no verdict overall in this made-up run: a dash
        }
    )
    lines = render_summary(shadowed).splitlines()
    assert lines[0].split()[-5:] == ["production", "student", "95%", "transfer", "agrees"]
    assert lines[1].split() == ["capitals", "0.00", "0.80", "0.50", "0.70", "[0.25,", "0.75]", "0.62", "0.60"]
    assert lines[2].split() == ["all", "0.00", "0.80", "0.50", "0.70", "0.62", "-"]
    assert any(line.startswith("shadow: student agrees with production on 60%") for line in lines)
