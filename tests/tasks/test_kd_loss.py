"""The distillation loss against values worked out by hand."""

import math

import pytest
import torch

from tasks.kd_loss import kd_loss

# Two positions over a three-token vocabulary, the teacher's top-1 stored at each; a third position is masked.
# Position 1: student uniform (1/3 each); teacher 0.5 on token 0 -> buckets teacher (0.5, 0.5), student (1/3, 2/3).
# Position 2: student (0.5, 0.25, 0.25); teacher 0.8 on token 1 -> buckets teacher (0.8, 0.2), student (0.25, 0.75).
LOGITS = torch.tensor([[[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0], [9.0, -9.0, 0.0]]])
TOP_IDS = torch.tensor([[[0], [1], [2]]])
TOP_LOG_PROBS = torch.tensor([[[math.log(0.5)], [math.log(0.8)], [math.log(0.9)]]])
MASK = torch.tensor([[True, True, False]])


def test_forward_kl_on_a_two_token_toy():
    by_hand = (0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
               + 0.8 * math.log(0.8 / 0.25) + 0.2 * math.log(0.2 / 0.75)) / 2  # fmt: skip
    assert by_hand == pytest.approx(0.36253, abs=1e-5)
    assert kd_loss(LOGITS, TOP_IDS, TOP_LOG_PROBS, MASK, "forward_kl").item() == pytest.approx(by_hand, rel=1e-5)


def test_reverse_kl_and_jsd_on_the_same_toy():
    by_hand = ((1 / 3) * math.log((1 / 3) / 0.5) + (2 / 3) * math.log((2 / 3) / 0.5)
               + 0.25 * math.log(0.25 / 0.8) + 0.75 * math.log(0.75 / 0.2)) / 2  # fmt: skip
    assert kd_loss(LOGITS, TOP_IDS, TOP_LOG_PROBS, MASK, "reverse_kl").item() == pytest.approx(by_hand, rel=1e-5)

    def jsd(t: list[float], s: list[float], beta: float) -> float:
        m = [beta * a + (1 - beta) * b for a, b in zip(t, s, strict=True)]
        kl = lambda p, q: sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))  # noqa: E731
        return beta * kl(t, m) + (1 - beta) * kl(s, m)

    by_hand = (jsd([0.5, 0.5], [1 / 3, 2 / 3], 0.3) + jsd([0.8, 0.2], [0.25, 0.75], 0.3)) / 2
    assert kd_loss(LOGITS, TOP_IDS, TOP_LOG_PROBS, MASK, "jsd", beta=0.3).item() == pytest.approx(by_hand, rel=1e-5)


def test_zero_where_the_student_matches_and_gradients_flow_only_through_the_mask():
    logits = LOGITS.clone().requires_grad_(True)
    matched = torch.tensor([[[math.log(1 / 3)], [math.log(0.25)], [math.log(0.9)]]])  # what the student gives them
    assert kd_loss(logits, TOP_IDS, matched, MASK).item() == pytest.approx(0.0, abs=1e-6)
    kd_loss(logits, TOP_IDS, TOP_LOG_PROBS, MASK).backward()
    assert logits.grad[0, 2].abs().sum() == 0 and logits.grad[0, :2].abs().sum() > 0


def test_temperature_softens_both_sides_alike_and_scales_by_its_square():
    # position 2 alone at T = 2: buckets teacher (0.8, 0.2), student (0.25, 0.75), each softened to p^(1/2)
    t = [math.sqrt(0.8), math.sqrt(0.2)]
    s = [math.sqrt(0.25), math.sqrt(0.75)]
    t, s = [v / sum(t) for v in t], [v / sum(s) for v in s]
    by_hand = 4 * sum(a * math.log(a / b) for a, b in zip(t, s, strict=True))
    second = torch.tensor([[False, True, False]])
    assert kd_loss(LOGITS, TOP_IDS, TOP_LOG_PROBS, second, temperature=2.0).item() == pytest.approx(by_hand, rel=1e-5)
    # a student equal to the teacher stays at zero at any temperature
    student = torch.tensor([[[math.log(2), 0.0, 0.0]]])  # (0.5, 0.25, 0.25); the teacher's top-1 is token 0 at 0.5
    same = kd_loss(student, torch.tensor([[[0]]]), torch.tensor([[[math.log(0.5)]]]), torch.tensor([[True]]),
                   temperature=2.0)  # fmt: skip
    assert same.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_infinities_give_finite_losses_and_gradients(kind):
    logits = torch.tensor([[[float("-inf"), 0.0, 1.0], [0.0, 2.0, float("-inf")]]], requires_grad=True)
    top_ids = torch.tensor([[[0, 1], [1, 2]]])
    stored = torch.tensor([[[-0.1, float("-inf")], [-0.2, -3.0]]], dtype=torch.float16)  # float16's floor
    loss = kd_loss(logits, top_ids, stored, torch.tensor([[1, 1]]), kind)  # an int mask counts as positions
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    nothing = kd_loss(logits, top_ids, stored, torch.tensor([[False, False]]), kind)
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_jsd_refuses_the_endpoints():
    with pytest.raises(ValueError, match="jsd needs 0 < beta < 1"):
        kd_loss(LOGITS, TOP_IDS, TOP_LOG_PROBS, MASK, "jsd", beta=1.0)
