"""The template form rewrites exactly the arguments the training template rewrites, keyed on ``class_name`` as written.

The template compares ``class_name`` with exact strings: its ``t_initial`` /
``noise_range_t`` rule is keyed on ``CosineLRScheduler``, so its own
``timm_CosineLRScheduler`` files reach timm unchanged (fractions of
``noise_range_t`` read as epochs: no noise), and timm's other schedulers are not
rewritten at all. The references run timm's classes on the arguments the
template passes them.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from optforge.errors import ConfigError
from optforge.lr_schedulers import build_named_scheduler, build_template_schedulers
from tests.lr_schedulers._common import make_optimizer, run

timm_scheduler = pytest.importorskip("timm.scheduler")

EPOCHS = 200


def _warning() -> type[Warning]:
    from optforge.lr_schedulers import TemplateRuleWarning

    return TemplateRuleWarning


def _section(class_name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": "s", "class_name": class_name, "args": args, "checkpoint": None}


def _build(class_name: str, args: dict[str, Any] | None, epochs: int = EPOCHS, groups: int = 1) -> tuple[Any, Any]:
    optimizer = make_optimizer(groups=groups)
    document = {"epoch_scheduler": _section(class_name, args), "iter_scheduler": None}
    return optimizer, build_template_schedulers(document, optimizer, epoch=epochs, max_iter=epochs * 10)[1]


def _timm_lrs(cls: str, args: dict[str, Any], epochs: int = EPOCHS) -> list[list[float]]:
    """timm's scheduler on exactly ``args``, stepped with ``step(epoch)`` from epoch 0."""
    optimizer = make_optimizer(groups=1)
    scheduler = getattr(timm_scheduler, cls)(optimizer, **args)
    out = []
    for epoch in range(epochs):
        scheduler.step(epoch)
        out.append([float(optimizer.param_groups[0]["lr"])])
    return out


TEMPLATE_COSINE = {  # as the template's timm_CosineLRScheduler file writes it
    "t_initial": 200,
    "lr_min": 1e-5,
    "warmup_t": 5,
    "warmup_lr_init": 1e-5,
    "noise_range_t": [0.8, 0.9],
    "noise_pct": 0.67,
    "noise_seed": 42,
}


def test_a_timm_cosine_file_adds_no_noise_as_in_the_template() -> None:
    with pytest.warns(_warning()) as caught:
        optimizer, scheduler = _build("timm_CosineLRScheduler", TEMPLATE_COSINE)
    got = run(optimizer, lambda k: scheduler.step(), EPOCHS)
    assert got == _timm_lrs("CosineLRScheduler", TEMPLATE_COSINE)
    assert got == _timm_lrs("CosineLRScheduler", {**TEMPLATE_COSINE, "noise_range_t": None})  # no noise at all
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "epoch_scheduler.args.noise_range_t" in message
    assert "noise_range_t: [{fraction: 0.8}, {fraction: 0.9}]" in message


def test_a_timm_cosine_t_initial_stays_as_written() -> None:
    args = {"t_initial": 1.0, "lr_min": 1e-5, "warmup_t": 3, "warmup_lr_init": 1e-5}
    with pytest.warns(_warning(), match=r"t_initial: \{fraction: 1.0\}"):
        optimizer, scheduler = _build("timm_CosineLRScheduler", args, epochs=40)
    assert scheduler.scheduler.t_initial == 1
    assert run(optimizer, lambda k: scheduler.step(), 40) == _timm_lrs("CosineLRScheduler", args, 40)


def test_the_fractions_written_as_optforge_lengths_do_what_the_author_meant() -> None:
    args = {**TEMPLATE_COSINE, "t_initial": {"fraction": 1.0}, "noise_range_t": [{"fraction": 0.8}, {"fraction": 0.9}]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer, scheduler = _build("timm_CosineLRScheduler", args)
    meant = {**TEMPLATE_COSINE, "t_initial": 200, "noise_range_t": [160, 180]}
    assert run(optimizer, lambda k: scheduler.step(), EPOCHS) == _timm_lrs("CosineLRScheduler", meant)


NOISY = {
    "timm_CosineLRScheduler": {"t_initial": 50},
    "timm_PolyLRScheduler": {"t_initial": 50},
    "timm_TanhLRScheduler": {"t_initial": 50},
    "timm_StepLRScheduler": {"decay_t": 10},
    "timm_MultiStepLRScheduler": {"decay_t": [10, 20]},
    "timm_PlateauLRScheduler": {"mode": "min"},
}


@pytest.mark.filterwarnings("ignore:PlateauLRScheduler is deprecated:FutureWarning")
@pytest.mark.parametrize("noise_range_t", [[0.4, 0.6], [0.25, 1.0], 0.5, [2.5, 7.5]])
@pytest.mark.parametrize("class_name", sorted(NOISY))
def test_timm_noise_ranges_reach_timm_as_the_template_passes_them(class_name: str, noise_range_t: Any) -> None:
    args = {**NOISY[class_name], "noise_range_t": noise_range_t}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _warning())
        _, built = _build(class_name, args, epochs=60)
    theirs = getattr(timm_scheduler, class_name.removeprefix("timm_"))(make_optimizer(groups=1), **args)
    assert [built.scheduler._is_apply_noise(t) for t in range(60)] == [theirs._is_apply_noise(t) for t in range(60)]


@pytest.mark.parametrize("class_name", ["timm_PolyLRScheduler", "timm_TanhLRScheduler"])
def test_timm_poly_and_tanh_t_initial_are_not_rewritten(class_name: str) -> None:
    with pytest.raises(ConfigError, match=r"epoch_scheduler\.args\.t_initial: required argument"):
        _build(class_name, {"lr_min": 1e-5})
    _, built = _build(class_name, {"t_initial": 30})
    assert built.scheduler.t_initial == 30


def test_the_step_scheduler_noise_fractions_add_no_noise() -> None:
    args = {"decay_t": 30, "decay_rate": 0.5, "noise_range_t": [0.4, 0.6], "noise_pct": 0.5}
    with pytest.warns(_warning(), match=r"noise_range_t: \[\{fraction: 0.4\}, \{fraction: 0.6\}\]"):
        optimizer, scheduler = _build("timm_StepLRScheduler", args)
    assert run(optimizer, lambda k: scheduler.step(), EPOCHS) == _timm_lrs("StepLRScheduler", args)


def test_a_document_warns_once_for_all_its_fractions() -> None:
    document = {
        "epoch_scheduler": _section("timm_CosineLRScheduler", {"t_initial": 1.0, "noise_range_t": [0.5, 0.9]}),
        "iter_scheduler": _section("timm_StepLRScheduler", {"decay_t": 100, "noise_range_t": 0.3}),
    }
    with pytest.warns(_warning()) as caught:
        build_template_schedulers(document, make_optimizer(), epoch=50, max_iter=500)
    assert len([w for w in caught if issubclass(w.category, _warning())]) == 1
    message = str(caught[0].message)
    for path in ("epoch_scheduler.args.t_initial", "epoch_scheduler.args.noise_range_t", "iter_scheduler.args"):
        assert path in message


def test_the_class_name_cosinelrscheduler_is_not_a_template_scheduler() -> None:
    with pytest.raises(ConfigError) as info:
        _build("CosineLRScheduler", {"noise_range_t": [0.8, 0.9]})
    assert "timm's CosineLRScheduler is registered as 'timm_CosineLRScheduler'" in str(info.value)
    assert "ChainedScheduler" not in str(info.value).split("Valid choices")[0]


def test_a_registered_cosinelrscheduler_gets_the_template_rule() -> None:
    from optforge.lr_schedulers import TimmScheduler, register_scheduler, unregister_scheduler

    register_scheduler(timm_scheduler.CosineLRScheduler, name="CosineLRScheduler", wrap=TimmScheduler)
    try:
        with pytest.warns(_warning(), match=r"t_initial: 50 is replaced by the run's length, 200"):
            _, built = _build("CosineLRScheduler", {"t_initial": 50, "noise_range_t": [0.8, 0.9, 3]})
        assert built.scheduler.t_initial == 200
        assert built.scheduler.noise_range_t == [160, 180, 3]
        _, exact = _build("CosineLRScheduler", {"noise_range_t": [0.8, 0.9]})
        assert exact.scheduler.t_initial == 200
        # The rule is keyed on the exact name: another spelling gets no t_initial.
        warns = pytest.warns(_warning(), match="matches class_name exactly")
        with warns, pytest.raises(ConfigError, match="t_initial"):
            _build("cosinelrscheduler", {"noise_range_t": [80, 90]})
    finally:
        unregister_scheduler("CosineLRScheduler")


def test_polynomial_lr_decay_always_decays_over_the_run() -> None:
    with pytest.warns(_warning(), match=r"max_decay_steps: 50 is replaced by the run's length, 200"):
        _, built = _build("PolynomialLRDecay", {"max_decay_steps": 50})
    assert built.max_decay_steps == 200
    _, missing = _build("PolynomialLRDecay", None)
    assert missing.max_decay_steps == 200


def test_linear_lr_with_a_null_total_iters_runs_over_the_run() -> None:
    _, built = _build("LinearLR", {"start_factor": 0.1, "total_iters": None})
    assert built.total_iters == EPOCHS
    _, given = _build("LinearLR", {"start_factor": 0.1, "total_iters": 7})
    assert given.total_iters == 7


def test_milestones_and_step_size_fractions_scale() -> None:
    _, steps = _build("MultiStepLR", {"milestones": [0.5, 0.75, 30]})
    assert sorted(steps.milestones) == [30, 100, 150]
    _, step = _build("StepLR", {"step_size": 0.1})
    assert step.step_size == 20


def test_the_rules_are_keyed_on_the_exact_class_name() -> None:
    with pytest.warns(_warning(), match=r"'multisteplr' is not 'MultiStepLR'"), pytest.raises(ConfigError) as info:
        _build("multisteplr", {"milestones": [0.5, 0.75]})
    assert info.value.problems[0][0] == "epoch_scheduler.args.milestones[0]"


def test_a_chained_scheduler_rewrites_its_nested_sections_the_same_way() -> None:
    nested = [
        _section("LinearLR", {"start_factor": 0.5}),
        _section("MultiStepLR", {"milestones": [0.5]}),
        _section("timm_CosineLRScheduler", {"t_initial": 100, "noise_range_t": [0.5, 0.9]}),
    ]
    args = {"step_ranges": [[0, 10], [10, 100], [100, 1000]], "schedulers": nested}
    with pytest.warns(_warning(), match=r"epoch_scheduler\.args\.schedulers\[2\]\.args\.noise_range_t"):
        _, chained = _build("ChainedScheduler", args)
    linear, multistep, cosine = chained._schedulers
    assert linear.total_iters == EPOCHS
    assert sorted(multistep.milestones) == [100]
    assert cosine.scheduler.t_initial == 100
    assert not any(cosine.scheduler._is_apply_noise(t) for t in range(EPOCHS))


def test_a_template_section_given_to_build_scheduler_gets_the_same_rules() -> None:
    section = _section("timm_CosineLRScheduler", {"t_initial": 80, "noise_range_t": [0.8, 0.9]})
    with pytest.warns(_warning()):
        built = build_named_scheduler(make_optimizer(), section, total_steps=100)
    assert built.scheduler.t_initial == 80
    assert not any(built.scheduler._is_apply_noise(t) for t in range(100))
    flat = build_named_scheduler(make_optimizer(), {"name": "timm_CosineLRScheduler", "t_initial": 80}, total_steps=100)
    assert flat.scheduler.t_initial == 80


def test_a_whole_float_epoch_is_not_a_fraction() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, built = _build("timm_CosineLRScheduler", {"t_initial": 150.0, "noise_range_t": [50.0, 150.0]})
    assert built.scheduler.t_initial == 150
    assert [built.scheduler._is_apply_noise(t) for t in (49, 50, 149, 150)] == [False, True, True, False]


def test_the_iteration_scheduler_paths_name_their_section() -> None:
    document = {"epoch_scheduler": None, "iter_scheduler": _section("timm_CosineLRScheduler", {"t_initial": 0.5})}
    with pytest.warns(_warning(), match=r"iter_scheduler\.args\.t_initial"), pytest.raises(ConfigError):
        build_template_schedulers(document, make_optimizer(), epoch=10, max_iter=torch.Size([100])[0])
