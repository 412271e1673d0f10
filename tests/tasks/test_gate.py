from tasks.gate import GateConfig, gate_decision


def test_gate():
    gate = GateConfig(min_transfer_ratio=0.5)
    assert gate_decision(gate, 0.6, check_passed=True)[0] is True
    assert gate_decision(gate, 0.4, check_passed=True) == (False, "not promoted: transfer ratio 0.40 < 0.50")
    assert gate_decision(gate, 0.9, check_passed=False) == (False, "not promoted: the export failed its check")


def test_the_student_is_compared_with_the_champion_slice_by_slice_on_the_same_prompts():
    from tasks.gate import versus_champion
    from tasks.tracking import Champion

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
