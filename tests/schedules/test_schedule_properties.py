"""Properties every schedule keeps, over generated configs.

For each schedule, a strategy draws a valid config and records what must hold:
the range ``[low, peak]``, the warmup (which reaches the peak exactly at its
end), and the steps where the schedule must be continuous (it is a function of
real-valued steps too, so continuity is checked from the left with a tiny step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.schedules import LearningRate, make_schedule


@dataclass
class Case:
    config: dict
    peak: float
    low: float
    warmup: int = 0
    init: float = 0.0
    continuous_at: list[int] = field(default_factory=list)
    horizon: int = 1000
    reached: float | None = None  # the value at the end of the warmup, when not the peak


peaks = st.floats(1e-6, 10.0)
fractions = st.floats(0.0, 1.0)
warmups = st.integers(0, 50)
lengths = st.integers(1, 400)


@st.composite
def _warmup(draw: st.DrawFn, peak: float) -> dict:
    warmup = draw(warmups)
    return {"warmup_steps": warmup, "init_value": peak * draw(fractions)} if warmup else {}


@st.composite
def annealed(draw: st.DrawFn, name: str) -> Case:
    peak, end = draw(peaks), 0.0
    end = peak * draw(fractions)
    warm = draw(_warmup(peak))
    w = warm.get("warmup_steps", 0)
    decay = w + draw(lengths)
    config = {"peak_value": peak, "end_value": end, "decay_steps": decay, **warm}
    if name == "polynomial_decay":
        config["power"] = draw(st.floats(0.5, 4.0))
    init = warm.get("init_value", 0.0)
    return Case({name: config}, peak, min(end, init), w, init, [w, decay], decay + 10)


@st.composite
def exponential(draw: st.DrawFn, name: str) -> Case:
    peak = draw(peaks)
    end = peak * draw(st.floats(0.0, 0.5))
    warm = draw(_warmup(peak))
    config = {
        "peak_value": peak,
        "end_value": end,
        "decay_rate": draw(st.floats(0.01, 0.99)),
        "transition_steps": draw(lengths),
        **warm,
    }
    staircase = name == "step_decay" or draw(st.booleans())
    if name == "exponential_decay":
        config["staircase"] = staircase
    w = warm.get("warmup_steps", 0)
    init = warm.get("init_value", 0.0)
    return Case({name: config}, peak, min(end, init), w, init, [] if staircase else [w])


@st.composite
def multistep(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    warm = draw(_warmup(peak))
    w = warm.get("warmup_steps", 0)
    marks = sorted(draw(st.sets(st.integers(w + 1, w + 500), min_size=1, max_size=4)))
    rate = draw(st.floats(0.01, 0.99))
    config = {"peak_value": peak, "decay_rate": rate, "milestones": marks, **warm}
    init = warm.get("init_value", 0.0)
    return Case({"multistep_decay": config}, peak, min(init, peak * rate ** len(marks)), w, init, [w])


@st.composite
def inverse_sqrt(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    warm = draw(_warmup(peak))
    config = {"peak_value": peak, **warm}
    if not warm or draw(st.booleans()):
        config["timescale"] = draw(lengths)
    w = warm.get("warmup_steps", 0)
    return Case({"inverse_sqrt": config}, peak, 0.0, w, warm.get("init_value", 0.0), [w])


@st.composite
def cosine_restarts(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    end = peak * draw(fractions)
    warm = draw(_warmup(peak))
    config = {
        "peak_value": peak,
        "end_value": end,
        "cycle_steps": draw(st.integers(1, 50)),
        "cycle_mult": draw(st.floats(1.0, 3.0)),
        "peak_decay": draw(st.floats(0.1, 1.0)),
        **warm,
    }
    w, init = warm.get("warmup_steps", 0), warm.get("init_value", 0.0)
    return Case({"cosine_restarts": config}, peak, min(end, init), w, init, [w])


@st.composite
def one_cycle(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    init, end = peak * draw(fractions), peak * draw(fractions)
    w = draw(st.integers(1, 100))
    decay = w + draw(lengths)
    config = {
        "init_value": init,
        "peak_value": peak,
        "end_value": end,
        "warmup_steps": w,
        "decay_steps": decay,
        "shape": draw(st.sampled_from(["cosine", "linear"])),
    }
    # As torch's OneCycleLR, the peak comes at step w - 1 (step 0 for w = 1) and the end at the run's last step.
    return Case({"one_cycle": config}, peak, min(init, end), w - 1, init, [w - 1, decay - 1], decay + 10)


@st.composite
def warmup_stable_decay(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    end = peak * draw(fractions)
    warm = draw(_warmup(peak))
    w = warm.get("warmup_steps", 0)
    cooldown = draw(lengths)
    decay = w + cooldown + draw(st.integers(0, 200))
    shape = draw(st.sampled_from(["linear", "cosine", "1-sqrt"]))
    config = {
        "peak_value": peak,
        "end_value": end,
        "decay_steps": decay,
        "cooldown_steps": cooldown,
        "shape": shape,
        **warm,
    }
    init = warm.get("init_value", 0.0)
    return Case(
        {"warmup_stable_decay": config}, peak, min(end, init), w, init, [w, decay - cooldown, decay], decay + 10
    )


@st.composite
def system_a(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    ramp = draw(st.integers(1, 100))
    if draw(st.booleans()):
        config = {"linear_ramp_to_constant": {"learning_rate": peak, "num_ramp_steps": ramp}}
        return Case(config, peak, 0.0, ramp, 0.0, [ramp])
    final = peak * draw(fractions)
    total = ramp + draw(lengths)
    config = {
        "linear_ramp_to_cosine": {
            "learning_rate": peak,
            "final_learning_rate": final,
            "num_ramp_steps": ramp,
            "final_num_steps": total,
        }
    }
    return Case(config, peak, 0.0, ramp, 0.0, [ramp, total], total + 10)


@st.composite
def piecewise(draw: st.DrawFn) -> Case:
    bounds = sorted(draw(st.sets(st.integers(0, 500), max_size=5)))
    values = draw(st.lists(peaks, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    config = {"piecewise_constant": {"learning_rate_boundaries": bounds, "learning_rate_values": values}}
    return Case(config, max(values), min(values))


@st.composite
def wrapped(draw: st.DrawFn) -> Case:
    """A warmup in front of, or a join of, other generated schedules."""
    inner = draw(st.one_of(annealed("cosine_decay"), piecewise(), system_a()))
    if draw(st.booleans()):
        w = draw(st.integers(1, 50))
        start = make_schedule(inner.config)(0)
        init = start * draw(fractions)
        config = {"warmup": {"warmup_steps": w, "init_value": init, "schedule": inner.config}}
        continuous = [w + s for s in inner.continuous_at if s] + [w]
        return Case(config, inner.peak, min(inner.low, init), w, init, continuous, inner.horizon + w, reached=start)
    first = draw(annealed("linear_decay"))
    steps = first.config["linear_decay"]["decay_steps"]
    config = {"join": {"phases": [{"schedule": first.config}, {"schedule": inner.config}]}}
    meets = first.config["linear_decay"]["end_value"] == make_schedule(inner.config)(0)
    boundaries = [first.warmup, steps] if meets else [first.warmup]
    peak, low = max(first.peak, inner.peak), min(first.low, inner.low)
    return Case(config, peak, low, first.warmup, first.init, boundaries, steps + inner.horizon, reached=first.peak)


@st.composite
def ramp(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    init, shape = peak * draw(fractions), draw(st.sampled_from(["linear", "cosine", "1-sqrt", "log"]))
    w = draw(st.integers(2, 100))
    config = {"ramp": {"init_value": init, "peak_value": peak, "warmup_steps": w, "shape": shape}}
    return Case(config, peak, init, w, init, [w - 1, w] if shape == "log" else [w])


@st.composite
def triangle(draw: st.DrawFn) -> Case:
    start, apex = draw(peaks), draw(peaks)
    rise, fall = draw(st.integers(1, 100)), draw(st.integers(0, 100))
    stairs = draw(st.sampled_from([0, 0, 3]))
    body = {"init_value": start, "peak_value": apex, "rise_steps": rise, "fall_steps": fall}
    config = {"triangle": {**body, "rise_stairs": stairs, "fall_stairs": stairs}}
    continuous = [] if stairs else [rise, rise + fall] if fall else []
    return Case(config, max(start, apex), min(start, apex), continuous_at=continuous)


@st.composite
def inverse_time_decay(draw: st.DrawFn) -> Case:
    peak, rate, steps, staircase = draw(peaks), draw(st.floats(0.0, 5.0)), draw(lengths), draw(st.booleans())
    body = {"peak_value": peak, "decay_rate": rate, "transition_steps": steps, "staircase": staircase}
    config = {"inverse_time_decay": body}
    return Case(config, peak, peak / (1 + rate * 1000 / steps), continuous_at=[] if staircase else [steps])


@st.composite
def linear_growth(draw: st.DrawFn) -> Case:
    init, rate, steps, staircase = draw(peaks), draw(st.floats(0.0, 5.0)), draw(lengths), draw(st.booleans())
    config = {"linear_growth": {"init_value": init, "rate": rate, "transition_steps": steps, "staircase": staircase}}
    return Case(config, init * (1 + rate * 1000 / steps), init, continuous_at=[] if staircase else [steps])


@st.composite
def cosine_cycles(draw: st.DrawFn) -> Case:
    peak = draw(peaks)
    end, warm = peak * draw(fractions), draw(_warmup(peak))
    w = warm.get("warmup_steps", 0)
    decay, cycles, hard = w + draw(lengths), draw(st.floats(0.25, 3.0)), draw(st.booleans())
    body = {"peak_value": peak, "end_value": end, "decay_steps": decay, "cycles": cycles, "hard_restarts": hard}
    init = warm.get("init_value", 0.0)
    return Case({"cosine_cycles": {**body, **warm}}, peak, min(end, init), w, init, [w], decay + 10)


@st.composite
def shifted(draw: st.DrawFn) -> Case:
    inner = draw(annealed("cosine_decay"))
    steps = draw(st.integers(0, 20))
    config = {"shift": {"steps": steps, "schedule": inner.config}}
    continuous = [s - steps for s in inner.continuous_at if s > steps]
    return Case(config, inner.peak, inner.low, continuous_at=continuous, horizon=inner.horizon)


STRATEGIES = {
    "cosine_cycles": cosine_cycles(),
    "shift": shifted(),
    "ramp": ramp(),
    "triangle": triangle(),
    "inverse_time_decay": inverse_time_decay(),
    "linear_growth": linear_growth(),
    "linear_decay": annealed("linear_decay"),
    "cosine_decay": annealed("cosine_decay"),
    "polynomial_decay": annealed("polynomial_decay"),
    "exponential_decay": exponential("exponential_decay"),
    "step_decay": exponential("step_decay"),
    "multistep_decay": multistep(),
    "inverse_sqrt": inverse_sqrt(),
    "cosine_restarts": cosine_restarts(),
    "one_cycle": one_cycle(),
    "warmup_stable_decay": warmup_stable_decay(),
    "constant": peaks.map(lambda v: Case({"constant": v}, v, v)),
    "piecewise_constant": piecewise(),
    "system_a_ramps": system_a(),
    "composites": wrapped(),
}


def test_every_schedule_has_a_strategy() -> None:
    covered = set(STRATEGIES) - {"system_a_ramps", "composites"}
    covered |= {"linear_ramp_to_constant", "linear_ramp_to_cosine", "warmup", "join"}
    assert covered == set(LearningRate.model_fields)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_properties(name: str) -> None:
    @settings(max_examples=40, deadline=None)
    @given(STRATEGIES[name])
    def check(case: Case) -> None:
        f = make_schedule(case.config)
        tolerance = 1e-9 * case.peak
        steps = sorted({*range(0, case.horizon, max(1, case.horizon // 97)), *case.continuous_at, case.horizon})
        for step in steps:
            value = f(step)
            assert math.isfinite(value)
            assert case.low - tolerance <= value <= case.peak + tolerance, (step, value)
        if case.warmup:
            assert f(0) == pytest.approx(case.init, abs=tolerance)
            reached = case.peak if case.reached is None else case.reached
            assert f(case.warmup) == pytest.approx(reached, rel=1e-12), "the warmup reaches the peak at its end"
            assert f(case.warmup - 1) <= reached
        for step in case.continuous_at:
            if step > 0:
                assert f(step - 1e-9) == pytest.approx(f(step), rel=1e-4, abs=1e-4 * case.peak), step

    check()
