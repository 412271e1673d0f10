"""How well a judge separates good answers from bad on the demo's calibration set, per threshold.

    .venv/bin/python bench/judge_calibration.py            # the embedded teacher as the judge

The judge (greedy, the default rubric) scores each labelled answer of `tasks/demo_calibration.py`; for each
threshold t, "score >= t" is compared with the labels. The threshold a run would use is the lowest whose
precision reaches `judge.min_precision` (0.8) on at least 3 passing answers.
"""

import tempfile
from collections import Counter
from pathlib import Path

from _setup import embedded_teacher

from tasks.demo_calibration import LABELLED
from tasks.judge import Judge, JudgeConfig, JudgeUncalibrated, calibration_table, choose_threshold
from tasks.llm.config import LLMConfig


def main() -> None:
    config = JudgeConfig()
    with tempfile.TemporaryDirectory() as tmp:
        judge = Judge(config, LLMConfig(), embedded_teacher(), str(Path(tmp) / "requests.sqlite"))
        scores, _ = judge.scores([(prompt, answer) for prompt, answer, _ in LABELLED])
    labels = [label == "good" for _, _, label in LABELLED]
    given = dict(sorted(Counter(scores).items(), key=str))
    print(f"{len(LABELLED)} labelled answers ({sum(labels)} good); scores given: {given}")
    print(f"{'threshold':>9}{'passed':>8}{'precision':>11}{'recall':>8}{'accuracy':>10}")
    table = calibration_table(scores, labels)
    for row in table:
        print(
            f"{row['threshold']:>9}{row['passed']:>8}{row['precision']:>11.2f}{row['recall']:>8.2f}{row['accuracy']:>10.2f}"
        )
    try:
        print(f"threshold at precision {config.min_precision}: {choose_threshold(table, config.min_precision)}")
    except JudgeUncalibrated as refused:
        print(f"refused: {refused}")


if __name__ == "__main__":
    main()
