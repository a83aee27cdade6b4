from harness.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, verdict


def test_verdict_rules():
    assert verdict(2.0, 0.5, 0.001, 1.6) == REPRODUCED
    assert verdict(-2.0, 0.5, 0.001, 1.6) == NOT_REPRODUCED  # significant, opposite sign
    assert verdict(0.1, 0.3, 0.5, 1.6) == NOT_REPRODUCED  # tight CI around 0: would have seen +1.6
    assert verdict(0.5, 2.0, 0.6, 1.6) == INCONCLUSIVE  # too noisy
    assert verdict(0.5, None, None, 1.6) == INCONCLUSIVE
    assert verdict(float("nan"), 1.0, 0.5, 1.6) == INCONCLUSIVE
