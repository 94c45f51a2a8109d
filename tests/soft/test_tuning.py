"""Strength tuning: PER's one-shot rule, the continuous rule, exact resume, errors; candidate group names."""

import math

import pytest

from equilib.groups import O2, SO2
from equilib.soft import StrengthTuner, group_named


def feed(tuner, rows):
    for row in rows:
        tuner.update(row)


def test_per_rule_rescales_once_from_the_window_mean():
    names = ["O3", "O2x", "O2y", "O2z"]
    tuner = StrengthTuner(names, [0.0, 100.0, 100.0, 100.0], rule="per", start=5, power=2.0, window=2)
    rows = [{"O3": 9.0, "O2x": 8.0, "O2y": 6.0, "O2z": 1.0}] * 3 + [
        {"O3": 9.0, "O2x": 4.0, "O2y": 2.0, "O2z": 0.5}, {"O3": 9.0, "O2x": 2.0, "O2y": 4.0, "O2z": 1.5}]
    feed(tuner, rows[:4])
    assert tuner.strengths == dict(zip(names, [0.0, 100.0, 100.0, 100.0]))  # nothing before the rescaling step
    feed(tuner, rows[4:])
    # window means (steps 4 and 5): O2x 3, O2y 3, O2z 1; O3 has strength 0 and is left out of the minimum
    expected = [0.0, 100.0 / 9.0, 100.0 / 9.0, 100.0]
    assert all(math.isclose(tuner.strengths[n], e) for n, e in zip(names, expected))
    feed(tuner, rows)  # and never again
    assert all(math.isclose(tuner.strengths[n], e) for n, e in zip(names, expected))


def test_continuous_rule_follows_the_moving_averages_and_resumes_exactly():
    make = lambda: StrengthTuner(["a", "b"], [1.0, 2.0], rule="continuous", start=3, power=1.0, window=4)  # noqa: E731
    rows = [{"a": 1.0 + 0.1 * k, "b": 4.0 - 0.2 * k} for k in range(12)]
    whole = make()
    feed(whole, rows[:2])
    assert whole.strengths == {"a": 1.0, "b": 2.0}
    feed(whole, rows[2:])
    decay, averages = math.exp(-1 / 4), [rows[0]["a"], rows[0]["b"]]
    for row in rows[1:]:
        averages = [decay * averages[0] + (1 - decay) * row["a"], decay * averages[1] + (1 - decay) * row["b"]]
    smallest = min(averages)
    assert math.isclose(whole.strengths["a"], 1.0 * smallest / averages[0])
    assert math.isclose(whole.strengths["b"], 2.0 * smallest / averages[1])
    resumed, state = make(), None
    feed(resumed, rows[:7])
    state = resumed.state_dict()
    again = make()
    again.load_state_dict(state)
    feed(again, rows[7:])
    assert again.strengths == whole.strengths


def test_fixed_rule_and_errors():
    tuner = StrengthTuner(["a"], [3.0], rule="fixed")
    feed(tuner, [{"a": 5.0}] * 3)
    assert tuner.strengths == {"a": 3.0}
    with pytest.raises(ValueError, match="initial: expected one strength per name"):
        StrengthTuner(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="initial: expected non-negative strengths"):
        StrengthTuner(["a"], [-1.0])
    with pytest.raises(ValueError, match="rule: expected one of"):
        StrengthTuner(["a"], [1.0], rule="learned")
    with pytest.raises(ValueError, match="window: expected a positive int"):
        StrengthTuner(["a"], [1.0], window=0)
    with pytest.raises(ValueError, match="values: expected a finite non-negative value for 'a', got nan"):
        tuner.update({"a": float("nan")})
    with pytest.raises(ValueError, match="values: expected a finite non-negative value for 'a', got None"):
        tuner.update({"b": 1.0})


def test_group_names():
    assert repr(group_named("O2z")) == repr(O2())
    assert repr(group_named("SO2y")) == repr(SO2(axis=(0.0, 1.0, 0.0)))
    assert [repr(group_named(n)) for n in ("Translations", "SO3+Translations", "O3+Translations")] == [
        "Translations(dim=3, scale=1.0)", "SE3(scale=1.0)", "E3(scale=1.0)"]
    with pytest.raises(ValueError, match="group: expected one of O3, SO3, O2x"):
        group_named("O2w")
