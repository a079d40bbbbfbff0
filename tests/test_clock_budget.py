"""The output clock's timing rule and the latency budget's ladder choices."""

from fractions import Fraction as Fr

import pytest

from rifestream.errors import RifestreamError
from rifestream.pipeline.budget import LatencyBudget
from rifestream.pipeline.clock import OutputClock


def all_times(clock: OutputClock, inputs: list[Fr]) -> list[Fr]:
    times = []
    for t0, t1 in zip(inputs, inputs[1:], strict=False):
        times += clock.times_between(t0, t1)
    return times


def test_factor_two_puts_every_other_frame_exactly_halfway():
    clock = OutputClock(factor=2)
    inputs = [Fr(i, 30) for i in range(31)]
    times = all_times(clock, inputs)
    assert times == [Fr(k, 60) for k in range(60)]
    assert [clock.position(T, Fr(0), Fr(1, 30)) for T in clock.times_between(Fr(0), Fr(1, 30))] == [0.0, 0.5]


def test_24_to_60_has_no_drift_over_a_long_stream():
    clock = OutputClock(fps=60)
    inputs = [Fr(i, 24) for i in range(24 * 600 + 1)]  # ten minutes
    times = all_times(clock, inputs)
    assert len(times) == 60 * 600
    assert times[-1] == Fr(60 * 600 - 1, 60)
    first_pairs = [
        clock.position(T, Fr(i, 24), Fr(i + 1, 24)) for i in range(2) for T in times if Fr(i, 24) <= T < Fr(i + 1, 24)
    ]
    assert first_pairs == pytest.approx([0.0, 0.4, 0.8, 0.2, 0.6])


def test_variable_frame_rate_input_gets_midpoints_of_each_interval():
    clock = OutputClock(factor=2)
    inputs = [Fr(0), Fr(1, 30), Fr(3, 30), Fr(4, 30)]
    assert all_times(clock, inputs) == [Fr(0), Fr(1, 60), Fr(1, 30), Fr(2, 30), Fr(3, 30), Fr(7, 60)]


def test_fps_grid_is_anchored_at_the_first_frame_and_last_frame_only_if_on_grid():
    clock = OutputClock(fps=60)
    assert clock.times_between(Fr(5), Fr(5) + Fr(1, 24)) == [Fr(5), Fr(5) + Fr(1, 60), Fr(5) + Fr(2, 60)]
    assert clock.is_output_time(Fr(5) + Fr(1, 12))  # 5 + 5/60
    assert not clock.is_output_time(Fr(5) + Fr(1, 24))


def test_time_bases_represent_every_output_time():
    assert OutputClock(fps=60).output_time_base(Fr(1, 90000)) == Fr(1, 60)
    assert OutputClock(factor=2).output_time_base(Fr(1, 15360)) == Fr(1, 30720)
    assert OutputClock(factor=3).output_rate(Fr(30)) == 90
    assert OutputClock(fps="59.94").output_rate(None) == Fr(2997, 50)


@pytest.mark.parametrize("kwargs", [{}, {"factor": 2, "fps": 60}, {"factor": 0}, {"factor": 1.5}, {"fps": -1}])
def test_bad_clock_arguments_are_refused(kwargs):
    with pytest.raises(RifestreamError):
        OutputClock(**kwargs)


def test_budget_without_limit_always_runs_the_model():
    budget = LatencyBudget()
    budget.record("model", 10.0, 1)
    assert budget.choose(None, 1) == "model"


def test_budget_steps_down_the_ladder_by_measured_cost():
    budget = LatencyBudget(budget_s=0.030)
    assert budget.choose(0.030, 1) == "model"  # nothing measured yet: try it
    budget.record("model", 0.050, 1)
    assert budget.choose(0.030, 1) == "scale"
    budget.record("scale", 0.020, 1)
    assert budget.choose(0.030, 1) == "scale"
    assert budget.choose(0.030, 2) == "classical"  # two frames of 20 ms do not fit; the flow step is untried
    budget.record("classical", 0.012, 1)
    assert budget.choose(0.030, 2) == "classical"
    assert budget.choose(0.030, 3) == "blend"  # three frames of 12 ms do not fit
    budget.record("blend", 0.002, 1)
    assert budget.choose(0.001, 1) == "repeat"
    assert budget.choose(-0.5, 1) == "repeat"  # already late


def test_budget_costs_are_smoothed_not_replaced():
    budget = LatencyBudget(budget_s=0.03, smoothing=0.5)
    budget.record("model", 0.010, 1)
    budget.record("model", 0.030, 1)
    assert budget.expected_cost("model") == pytest.approx(0.020)
    budget.record("model", 0.040, 2)  # per frame
    assert budget.expected_cost("model") == pytest.approx(0.020)


def test_forced_step_and_bad_values():
    assert LatencyBudget(budget_s=0.01, force="blend").choose(1.0, 1) == "blend"
    with pytest.raises(RifestreamError, match="ladder step"):
        LatencyBudget(force="fast")
    with pytest.raises(RifestreamError, match="positive"):
        LatencyBudget(budget_s=0)


def test_a_step_too_slow_is_tried_again_after_a_wait_that_doubles_up_to_a_cap():
    budget = LatencyBudget(budget_s=0.030, retry_after=3, retry_max=10)
    budget.record("model", 0.100, 1)  # e.g. a first call that captured a CUDA graph
    budget.record("scale", 0.010, 1)
    tries = []
    for pair in range(1, 60):
        step = budget.choose(0.030, 1)
        if step == "model":
            tries.append(pair)
            budget.record("model", 0.100, 1)  # still too slow
        else:
            assert step == "scale"
            budget.record("scale", 0.010, 1)
    # waits of 3, 6, 10, 10, … pairs between tries
    assert tries == [4, 11, 22, 33, 44, 55]


def test_a_try_that_fits_brings_the_model_back_at_once():
    budget = LatencyBudget(budget_s=0.030, retry_after=2)
    budget.record("model", 2.0, 1)  # one capture's worth: a smoothed cost would take ~30 pairs to forget it
    budget.record("scale", 0.010, 1)
    assert [budget.choose(0.030, 1) for _ in range(2)] == ["scale", "scale"]
    assert budget.choose(0.030, 1) == "model"
    budget.record("model", 0.012, 1)  # the try's time replaces the cost
    assert budget.expected_cost("model") == 0.012
    assert [budget.choose(0.030, 1) for _ in range(5)] == ["model"] * 5


def test_a_try_whose_time_was_not_recorded_is_tried_again_and_none_when_already_late():
    budget = LatencyBudget(budget_s=0.030, retry_after=1)
    budget.record("model", 1.0, 1)
    budget.record("scale", 0.010, 1)
    budget.record("classical", 0.008, 1)
    budget.record("blend", 0.002, 1)
    assert budget.choose(0.030, 1) == "scale"
    assert budget.choose(0.030, 1) == "model"  # the try; its call captured, so nothing is recorded
    assert budget.choose(0.030, 1) == "model"  # tried again
    assert budget.choose(-0.001, 1) == "repeat"  # late already: no try, and nothing fits
