"""The LLM judge: its score parsed from any reply, its threshold set on a labelled calibration set, refused
without one unless the config says so, and every request through the durable store."""

import json

import pytest
from pydantic import ValidationError

from tasks.judge import (
    JudgeConfig,
    JudgeUncalibrated,
    calibration_table,
    choose_threshold,
    judge,
    judge_score,
    read_calibration,
)
from tasks.llm.config import LLMConfig
from tasks.models import resolve_model
from tasks.schemas import ROLLOUTS
from tasks.stage import read_dataset, write_dataset


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 4", 4),
        ("score:5", 5),
        ("**Score**: 2 — the answer names the wrong city.", 2),
        ("I'd give it a 3.", 3),
        ("Note: 4/5", 4),
        ("On a scale of 1 to 5, a 4.", 4),
        ("Score : 1", 1),
        ("The answer is good.", None),
        ("Score: 7", None),
    ],
)
def test_the_score_is_read_from_the_many_ways_a_judge_replies(reply, score):
    assert judge_score(reply) == score


def test_the_threshold_is_the_lowest_score_reaching_the_precision_asked():
    labels = [True, True, True, False, False, True, False, False, True]
    scores = [5, 4, 3, 4, 2, 5, 1, None, 5]  # an unscored answer does not pass
    table = calibration_table(scores, labels)
    at = {row["threshold"]: row for row in table}
    assert at[3]["precision"] == 5 / 6 and at[3]["recall"] == 1.0 and at[3]["accuracy"] == 8 / 9
    assert at[4]["precision"] == 4 / 5 and at[5]["precision"] == 1.0
    assert choose_threshold(table, 0.82) == 3  # 4 has less precision than 3 here: the lowest that reaches it
    assert choose_threshold(table, 0.9) == 5
    with pytest.raises(JudgeUncalibrated):  # one passing answer is no precision at all
        choose_threshold(calibration_table([5, 1, 1, 1], [True, False, True, False]), 0.9)
    with pytest.raises(
        JudgeUncalibrated, match=r"reaches precision 0.90 at no threshold .*\(best 0.50 at score >= 1\)"
    ):
        choose_threshold(calibration_table([3, 3, 3, 3], [True, False, True, False]), 0.9)


def test_a_calibration_set_must_label_every_row_good_or_bad(tmp_path):
    path = tmp_path / "calibration.jsonl"
    path.write_text(json.dumps({"prompt": "2+2?", "answer": "4", "label": "good"}) + "\n"
                    + json.dumps({"prompt": "2+2?", "answer": "5", "label": "maybe"}) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match="judge.calibration row 2: label 'maybe' is not good or bad"):
        read_calibration(str(path))
    path.write_text(json.dumps({"prompt": "2+2?", "label": "good"}) + "\n")
    with pytest.raises(ValueError, match="row 1: no answer"):
        read_calibration(str(path))
    csv = tmp_path / "calibration.csv"
    csv.write_text("prompt,answer,label\n¿2+2?,4,1\n¿2+2?,5,0\n")
    assert [r["label"] for r in read_calibration(str(csv))] == [True, False]


def test_a_judge_without_a_calibration_set_is_refused_unless_the_config_says_so():
    with pytest.raises(ValidationError, match="judge.calibration is not"):
        JudgeConfig(slices=["support"])
    assert JudgeConfig(slices=["support"], allow_uncalibrated=True).uncalibrated_threshold == 4


def _rollouts(tmp_path, answers: list[str]):
    rows = [
        {"prompt_id": f"p{i}", "sample_index": 0, "slice": "support", "prompt": "How do I reset my password?",
         "completion": answer, "finish_reason": "stop"}
        for i, answer in enumerate(answers)
    ]  # fmt: skip
    return write_dataset(rows, tmp_path / "rollouts.parquet", ROLLOUTS)


def test_an_uncalibrated_judge_scores_through_the_store_and_says_uncalibrated(tiny_teacher, tmp_path):
    model = LLMConfig(model=str(tiny_teacher))
    checkpoint = resolve_model(str(tiny_teacher), str(tmp_path / "models"))
    config = JudgeConfig(slices=["support"], allow_uncalibrated=True, max_new_tokens=4)
    rollouts = _rollouts(tmp_path, ["Open Settings, then Security.", "No idea.", "Ask your admin."])
    store = str(tmp_path / "requests.sqlite")
    first = judge(config, model, checkpoint, rollouts, store, str(tmp_path / "j1"))
    assert len(read_dataset(first.judgments)) == 3 and first.threshold == 4 and not first.calibrated
    assert "uncalibrated" in first.report.notes[0] and first.report.metrics["judge_requests_sent"] == 3
    again = judge(config, model, checkpoint, rollouts, store, str(tmp_path / "j2"))
    assert again.report.metrics["judge_requests_sent"] == 0  # from the store: never paid twice
    assert read_dataset(again.judgments) == read_dataset(first.judgments)


def test_a_judge_that_reaches_the_precision_at_no_threshold_fails_naming_the_best(tiny_teacher, tmp_path):
    from tasks.demo_calibration import write_calibration

    calibration = tmp_path / "calibration.jsonl"
    write_calibration(calibration)
    model = LLMConfig(model=str(tiny_teacher))  # random weights: no better than chance
    checkpoint = resolve_model(str(tiny_teacher), str(tmp_path / "models"))
    config = JudgeConfig(slices=["support"], calibration=str(calibration), min_precision=0.95, max_new_tokens=4)
    with pytest.raises(JudgeUncalibrated, match="reaches precision 0.95 at no threshold on its calibration set"):
        judge(config, model, checkpoint, _rollouts(tmp_path, ["x"]), str(tmp_path / "r.sqlite"), str(tmp_path / "j"))


def test_a_calibrated_judge_logs_its_curve_and_filters_at_its_threshold(tmp_path, monkeypatch):
    """The stage's plumbing, with a judge whose scores are known: 5 for an answer naming the right city, 2
    otherwise, except one wrong answer it rates 4 (so precision decides between 4 and 5)."""
    from tasks import judge as judge_stage
    from tasks.demo_calibration import LABELLED, write_calibration

    calibration = tmp_path / "calibration.jsonl"
    write_calibration(calibration)
    good = {answer for _, answer, label in LABELLED if label == "good"}

    def known_scores(self, pairs):
        return [5 if answer in good else 4 if answer == "Geneva." else 2 for _, answer in pairs], {}

    monkeypatch.setattr(judge_stage.Judge, "scores", known_scores)
    config = JudgeConfig(slices=["support"], calibration=str(calibration), min_precision=0.99)
    rollouts = _rollouts(tmp_path, ["Geneva.", "Berlin."])
    judged = judge(config, LLMConfig(), None, rollouts, str(tmp_path / "r.sqlite"), str(tmp_path / "j"))
    assert judged.threshold == 5 and judged.calibrated  # at 4, "Geneva." passes: precision 18/19 < 0.99
    assert judged.report.metrics["calibration.precision_at_4"] == 18 / 19
    assert [j["ok"] for j in read_dataset(judged.judgments)] == [False, True]
    assert open(judged.plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_pairwise_order_is_randomised_ties_counted_and_position_bias_measured():
    from tasks.judge import compare, preference

    replies = ("A", "b.", "Tie", "Answer B is better", "neither", "It's a tie", "a fine answer")
    assert [preference(r) for r in replies] == ["A", None, "tie", "B", None, "tie", None]
    triples = [(f"q{i}", f"good answer {i}", f"poor answer {i}") for i in range(200)]

    def always_first(texts):  # a judge with pure position bias
        return ["A"] * len(texts)

    biased = compare(always_first, triples, seed=1)
    assert biased.first_shown_preferred == 1.0 and 0.4 < biased.x_win_rate < 0.6  # its wins split by the coin

    def fair(texts):  # prefers the good answer wherever it is shown, ties on every 10th request
        return ["tie" if f"q{i}\n" in t and i % 10 == 0 else ("A" if t.index("good") < t.index("poor") else "B")
                for t, i in zip(texts, range(len(texts)), strict=True)]  # fmt: skip

    judged = compare(fair, triples, seed=1)
    assert judged.ties == 20 and judged.x_wins == 180 and judged.y_wins == 0
    assert judged.x_win_rate == (180 + 10) / 200 and 0.4 < judged.first_shown_preferred < 0.6


def test_the_students_win_rate_pairs_its_answers_with_the_teachers_by_prompt(tmp_path, monkeypatch):
    """Evaluate's answers in, one pairwise verdict per prompt both answered: a judge that prefers whichever
    answer says "Ottawa" (ties where both do)."""
    from tasks import judge as judge_stage
    from tasks.judge import win_rate

    def prefers_ottawa(self, texts):
        def verdict(text):
            first, second = text.split("Answer B:")
            return "tie" if "Ottawa" in first and "Ottawa" in second else "A" if "Ottawa" in first else "B"

        return [verdict(t) for t in texts], {}

    monkeypatch.setattr(judge_stage.Judge, "replies", prefers_ottawa)
    row = lambda model, i, answer: {"model": model, "prompt": f"Capital of Canada? ({i})", "answer": answer}  # noqa: E731
    answers = [row("teacher", i, "Ottawa.") for i in range(6)] + [row("student", i, "Toronto.") for i in range(4)]
    answers += [row("student", 4, "Ottawa!"), row("student", 5, "Ottawa."), row("student", 9, "Ottawa.")]
    won = win_rate.fn(JudgeConfig(), LLMConfig(), None, answers, str(tmp_path / "r.sqlite"))
    assert (won.pairs, won.student_wins, won.teacher_wins, won.ties) == (6, 0, 4, 2)  # prompt 9: no teacher answer
    assert won.win_rate == 1 / 6 and not won.calibrated
    assert won.summary() == (
        "judge win-rate, student vs teacher: 0.17 (0 won, 4 lost, 2 tied of 6 prompts; first shown preferred "
        f"{won.first_shown_preferred:.2f}, uncalibrated judge)"
    )
