import pytest
from mlflow import MlflowClient

from tasks.gate import Evidence, GateConfig, Versus, against_champion, gate_decision, missed_bars, promote_student
from tasks.schemas import ANSWERS
from tasks.stage import write_dataset
from tasks.stats import Interval
from tasks.tracking import Champion, TrackingConfig, champion, log_dataset, start_run

CLEARS = Evidence(transfer_ratio=0.8, slice_accuracy={"capitals": 0.7, "all": 0.6}, latency_p95_s=0.5,
                  check_passed=True)  # fmt: skip
BAR = GateConfig(min_transfer_ratio=0.5, min_slice_accuracy={"capitals": 0.6, "python": 0.5}, max_latency_p95_s=1.0)


def test_a_student_that_misses_names_every_bar_it_missed():
    worse = CLEARS.model_copy(
        update={
            "transfer_ratio": 0.4,
            "slice_accuracy": {"capitals": 0.55, "all": 0.5},
            "latency_p95_s": 2.5,
            "check_passed": False,
            "check_reason": "accuracy 0.40 exported vs 0.60 merged: more than the allowed drop 0.10",
        }
    )
    assert missed_bars(BAR, worse) == [
        "the export failed its check (accuracy 0.40 exported vs 0.60 merged: more than the allowed drop 0.10)",
        "transfer ratio 0.40 < 0.50",
        "slice capitals accuracy 0.55 < 0.60",
        "slice python: no scored held-out prompt (needs 0.50)",
        "p95 latency 2.50s > 1.00s",
    ]
    decision = gate_decision(BAR, worse, champion_version="3")
    assert not decision.passed and not decision.champion and decision.reason.startswith("not promoted: the export")


def test_the_first_student_to_clear_the_bar_is_champion():
    bar = BAR.model_copy(update={"min_slice_accuracy": {"capitals": 0.6}})
    decision = gate_decision(bar, CLEARS)
    assert decision.passed and decision.champion and decision.reason.startswith("@champion: the first")


@pytest.mark.parametrize(
    ("versus", "becomes_champion", "said"),
    [
        (
            Versus(difference=Interval(value=0.04, low=-0.02, high=0.1), prompts=50, wins=4, losses=2),
            False,
            "does not beat v3 by 0.04 [-0.02, 0.10] on 50 prompts (4 better, 2 worse; sign test p=0.344)",
        ),
        # four wins, no loss: the percentile interval is above 0, but four coin flips going one way is not proof
        (
            Versus(difference=Interval(value=0.08, low=0.02, high=0.16), prompts=50, wins=4, losses=0),
            False,
            "does not beat v3 by 0.08 [0.02, 0.16] on 50 prompts (4 better, 0 worse; sign test p=0.062)",
        ),
        (
            Versus(difference=Interval(value=0.3, low=0.18, high=0.42), prompts=50, wins=15, losses=0),
            True,
            "beats v3 by 0.30 [0.18, 0.42] on 50 prompts (15 better, 0 worse; sign test p=0.000)",
        ),
        (None, False, "no scored held-out prompt shared with v3, so it cannot replace v3"),
    ],
)
def test_a_challenger_replaces_the_champion_only_on_evidence(versus, becomes_champion, said):
    bar = BAR.model_copy(update={"min_slice_accuracy": {}})
    decision = gate_decision(bar, CLEARS.model_copy(update={"versus": versus}), "3")
    assert decision.passed and decision.champion is becomes_champion and said in decision.reason


def test_a_champion_whose_answers_are_gone_is_not_compared_and_says_why():
    gone = Champion(version="5", run_id="r", metrics={}, datasets={})
    evidence = against_champion(CLEARS, _answers(right=30, wrong=10), gone)
    decision = gate_decision(BAR.model_copy(update={"min_slice_accuracy": {}}), evidence, "5")
    assert not decision.champion and "the answers v5 was scored with are gone" in decision.reason


def test_a_latency_bar_is_missed_when_latency_was_not_measured():
    unmeasured = CLEARS.model_copy(update={"latency_p95_s": None})
    assert missed_bars(BAR.model_copy(update={"min_slice_accuracy": {}}), unmeasured) == [
        "p95 latency not measured (evaluate.latency_prompts is 0; the bar is 1.00s)"
    ]
    assert missed_bars(GateConfig(min_transfer_ratio=0.5), unmeasured) == []


def test_the_student_is_compared_with_the_champion_slice_by_slice_on_the_same_prompts():
    from tasks.gate import versus_champion

    champion = Champion(
        version="4",
        run_id="r",
        metrics={"evaluate.student.accuracy.capitals": 0.5, "evaluate.student.accuracy.all": 0.4, "train.loss": 1.0},
        datasets={},
    )
    metrics, table = versus_champion({"capitals": 0.75, "sentiment": 0.5, "all": 0.6}, champion, prompts=12)
    assert metrics["vs_champion.capitals"] == 0.25 and metrics["champion.accuracy.sentiment"] == 0.0
    assert round(metrics["vs_champion.all"], 2) == 0.2 and "train.loss" not in str(metrics)
    assert "The same 12 held-out prompts the champion (version 4) was scored on." in table
    assert table.count("| all |") == 1 and "| capitals | 0.50 | 0.75 | +0.25 |" in table


def _answers(right: int, wrong: int) -> list[dict]:
    """The student's answers to the same fixed prompts, the first `right` correct, and one teacher answer."""
    row = lambda i, model, ok: {  # noqa: E731
        "id": str(i), "slice": "sums", "prompt": f"What is {i} + {i}?", "reference": str(2 * i), "model": model,
        "answer": "?", "correct": ok, "reason": None,
    }  # fmt: skip
    return [row(i, "student", i < right) for i in range(right + wrong)] + [row(0, "teacher", True)]


def test_champion_challenger_and_previous_in_a_real_registry(tmp_path):
    """Three students in a (sqlite) MLflow registry: the first clears the bar and is champion; the second misses
    it and gets no alias; the third beats the first on the same prompts and replaces it, which keeps `previous`."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    config = GateConfig(min_transfer_ratio=0.5)

    def student(name: str, transfer: float, answers: list[dict]):
        run = start_run(TrackingConfig(), str(tmp_path), {"run": name}, name)
        log_dataset(run, write_dataset(answers, tmp_path / f"{name}.parquet", ANSWERS), "evaluate.answers", "evaluate")
        best = champion(run, config.registered_model, config.alias)
        evidence = CLEARS.model_copy(update={"transfer_ratio": transfer, "slice_accuracy": {"all": transfer}})
        evidence = against_champion(evidence, answers, best)
        runs.append(run)
        return promote_student.fn(config, run, str(model_dir), {}, evidence, best)

    runs = []
    first = student("first", 0.7, _answers(right=10, wrong=30))
    assert first.promoted and first.challenger and first.replaced is None
    missed = student("second", 0.3, _answers(right=30, wrong=10))
    assert not missed.challenger and not missed.promoted and missed.missed == ["transfer ratio 0.30 < 0.50"]
    better = student("third", 0.9, _answers(right=30, wrong=10))
    assert better.promoted and better.replaced == first.version and "beats v1" in better.reason

    client = MlflowClient(runs[0].tracking_uri)
    aliases = {v: client.get_model_version(config.registered_model, v).aliases for v in ("1", "2", "3")}
    assert (
        sorted(aliases["1"]) == ["previous"]
        and aliases["2"] == []
        and sorted(aliases["3"]) == ["challenger", "champion"]
    )
    assert client.get_model_version(config.registered_model, "2").tags["gate"] == "failed"
    # a run that read "no champion" at its start, while another run promoted v3: compared with nothing, it stays
    # challenger instead of taking the alias as "the first"
    stale = promote_student.fn(config, runs[0], str(model_dir), {}, CLEARS, None)
    assert stale.challenger and not stale.promoted and "the champion changed during this run (now v3)" in stale.reason
    # compared with v1, which was champion when it started: the comparison is thrown away, not used against v3
    v1 = Champion(version="1", run_id=runs[0].run_id, metrics={}, datasets={})
    beat_v1 = CLEARS.model_copy(update={"versus": Versus(difference=Interval(value=0.5, low=0.3, high=0.7),
                                                         prompts=40, wins=20, losses=0)})  # fmt: skip
    late = promote_student.fn(config, runs[0], str(model_dir), {}, beat_v1, v1)
    assert not late.promoted and "the champion changed during this run (now v3)" in late.reason
    # the champion's alias gone by promotion time (removed, or the registry did not answer): nothing replaced
    client.delete_registered_model_alias(config.registered_model, "champion")
    gone = promote_student.fn(config, runs[0], str(model_dir), {}, beat_v1, v1)
    assert not gone.promoted and "v1, the champion at this run's start, is not @champion now" in gone.reason


def _students(latency_measured: bool = True, **students: tuple[float, int, float]):
    """Several students as evaluate found them: name -> (accuracy on capitals and overall, params, p95 latency),
    the teacher at 0.8; (evidence by name, params by name)."""
    found = {
        name: Evidence(transfer_ratio=accuracy / 0.8, slice_accuracy={"capitals": accuracy, "all": accuracy},
                       latency_p95_s=p95 if latency_measured else None, check_passed=True)
        for name, (accuracy, _, p95) in students.items()
    }  # fmt: skip
    return found, {name: params for name, (_, params, _) in students.items()}


def test_the_gate_ships_the_smallest_student_that_clears_the_bar():
    from tasks.gate import choose_student

    bar = GateConfig(min_transfer_ratio=0.5, min_slice_accuracy={"capitals": 0.45}, max_latency_p95_s=1.0)
    # the smallest misses the latency bar; of the two that clear it at 90M, DPO's is the better one
    students = dict(student=(0.72, 135_000_000, 0.6), student_dpo=(0.76, 135_000_000, 0.6),
                    student_small=(0.48, 90_000_000, 0.4), student_small_dpo=(0.56, 90_000_000, 0.4),
                    student_tiny=(0.6, 30_000_000, 1.5))  # fmt: skip
    choice = choose_student(bar, *_students(**students))
    assert choice.student == "student_small_dpo"
    assert choice.reason == "student_small_dpo: the smallest student that clears the bar"
    assert "| **student_small_dpo** (ships) | 90.0 | 0.70 | none |" in choice.table
    assert "| student_small | 90.0 | 0.60 | none |" in choice.table
    assert "| student_tiny | 30.0 | 0.75 | p95 latency 1.50s > 1.00s |" in choice.table
    # latency not measured and a latency bar set: nobody clears it; the most accurate is registered, unaliased
    unmeasured = choose_student(bar, *_students(latency_measured=False, **students))
    assert unmeasured.student == "student_dpo" and "no student clears the bar" in unmeasured.reason
    # one student: it ships, whatever the bar says
    assert choose_student(bar, *_students(student=(0.1, 135_000_000, 0.6))).student == "student"


def test_a_champion_that_shipped_a_named_student_is_compared_on_that_students_answers(tmp_path):
    """A run that trained two sizes registered `student_small`: its answers under that name are the champion's."""
    run_answers = [
        {**row, "model": "student_small"} for row in _answers(right=10, wrong=30) if row["model"] == "student"
    ] + _answers(right=40, wrong=0)  # its bigger sibling, not shipped, got every one right
    uri = write_dataset(run_answers, tmp_path / "answers.parquet", ANSWERS).uri
    shipped_small = Champion(version="2", run_id="r", metrics={}, datasets={"evaluate.answers": uri},
                             student="student_small")  # fmt: skip
    mine = [{**row, "model": "student_dpo"} for row in _answers(right=30, wrong=10) if row["model"] == "student"]
    versus = against_champion(CLEARS, mine, shipped_small, "student_dpo").versus
    assert (versus.prompts, versus.wins, versus.losses) == (40, 20, 0)
