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
    assert config.dedup.near_threshold == 0.85  # default


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
