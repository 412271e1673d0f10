from tasks.gate import GateConfig, gate_decision


def test_gate():
    gate = GateConfig(min_transfer_ratio=0.5)
    assert gate_decision(gate, 0.6, check_passed=True)[0] is True
    assert gate_decision(gate, 0.4, check_passed=True) == (False, "not promoted: transfer ratio 0.40 < 0.50")
    assert gate_decision(gate, 0.9, check_passed=False) == (False, "not promoted: the export failed its check")
