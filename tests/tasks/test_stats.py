from tasks.stats import difference_interval, mean_interval, percentile, ratio_interval


def test_two_prompts_in_fifty_are_not_a_win_but_thirty_are():
    ours = [1.0] * 28 + [1.0, 1.0, 1.0, 0.0] + [0.0] * 18  # 3 prompts only we get right, 1 only they do
    theirs = [1.0] * 28 + [0.0, 0.0, 0.0, 1.0] + [0.0] * 18
    close = difference_interval(ours, theirs)
    assert round(close.value, 2) == 0.04 and close.low < 0 < close.high and not close.excludes_zero()
    far = difference_interval([1.0] * 45 + [0.0] * 5, [1.0] * 15 + [0.0] * 35)
    assert far.excludes_zero() and far.low > 0.4


def test_an_accuracy_interval_holds_its_value_and_narrows_with_more_prompts():
    few, many = mean_interval([1, 0, 1, 1, 0] * 2), mean_interval([1, 0, 1, 1, 0] * 40)
    assert few.low < few.value == 0.6 < few.high and many.low < many.value == 0.6 < many.high
    assert many.high - many.low < (few.high - few.low) / 3
    assert str(few).startswith("0.60 [")


def test_nothing_to_resample_gives_the_value_itself():
    assert mean_interval([1, 1, 1]).model_dump() == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert mean_interval([0]).model_dump() == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert mean_interval([]).value == 0.0


def test_a_transfer_ratio_resamples_the_same_prompts_for_both_models():
    student, teacher = [1, 0, 1, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 0, 1, 1]
    found = ratio_interval(student, teacher)
    assert round(found.value, 3) == round(5 / 7, 3) and found.low < found.value <= found.high
    assert ratio_interval([1, 0], [0, 0]).value == 0.0  # a teacher that scores 0: no ratio, not a division error


def test_percentile():
    assert percentile([1.0, 2.0, 3.0, 4.0, 100.0], 50) == 3.0 and percentile([], 95) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 100.0], 95) > 50
