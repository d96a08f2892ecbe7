"""The config document: every model of its sections, and one parser for every accepted form.

Example:
    >>> from optforge.config import parse_document
    >>> doc = parse_document({"optimizer": {"name": "AdamW", "lr": 1e-3}, "schedule": {"constant": 1e-3}})
    >>> doc.optimizer.name, doc.schedule
    ('AdamW', {'constant': 0.001})
"""

from optforge.config.around_step import AROUND_STEP_KEYS, AroundStep, ClipGrad, Ema, read_around_step
from optforge.config.document import DOCUMENT_KEYS, SECTION_FORMS, Document, OptimizerSection, parse_document
from optforge.config.problems import Problems
from optforge.config.rules import MultiTaskLearningRates, NoWeightDecay, ParamGroupRule, sanitize_task_name
from optforge.config.schedule_section import (
    SCHEDULE_KEYS,
    TEMPLATE_SCHEDULER_KEYS,
    ClosedForm,
    NamedScheduler,
    NoSchedule,
    OneSchedule,
    PerGroup,
    ScheduleSection,
    TemplateSchedulers,
    is_one_schedule,
    read_schedule_section,
)
from optforge.config.schema import ConfigDocument
from optforge.config.sections import (
    BUILD_OPTIONS,
    TYPED_OPTIMIZERS,
    AdagradConfig,
    AdamConfig,
    FlatOptimizerConfig,
    FlatPartConfig,
    OptimizerConfig,
    PartSelector,
    RecapAdamConfig,
    RecapOptimizerConfig,
    RecapPartConfig,
    SgdConfig,
    TemplateGroup,
    TemplateOptimizerConfig,
    TemplatePartConfig,
    TypedPartConfig,
)
from optforge.schedules import LearningRate, LinearRampToConstant, LinearRampToCosine, PiecewiseConstant

__all__ = [
    "AROUND_STEP_KEYS",
    "BUILD_OPTIONS",
    "DOCUMENT_KEYS",
    "SCHEDULE_KEYS",
    "SECTION_FORMS",
    "TEMPLATE_SCHEDULER_KEYS",
    "TYPED_OPTIMIZERS",
    "AdagradConfig",
    "AdamConfig",
    "AroundStep",
    "ClipGrad",
    "ClosedForm",
    "ConfigDocument",
    "Document",
    "Ema",
    "FlatOptimizerConfig",
    "FlatPartConfig",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultiTaskLearningRates",
    "NamedScheduler",
    "NoSchedule",
    "NoWeightDecay",
    "OneSchedule",
    "OptimizerConfig",
    "OptimizerSection",
    "ParamGroupRule",
    "PartSelector",
    "PerGroup",
    "PiecewiseConstant",
    "Problems",
    "RecapAdamConfig",
    "RecapOptimizerConfig",
    "RecapPartConfig",
    "ScheduleSection",
    "SgdConfig",
    "TemplateGroup",
    "TemplateOptimizerConfig",
    "TemplatePartConfig",
    "TemplateSchedulers",
    "TypedPartConfig",
    "is_one_schedule",
    "parse_document",
    "read_around_step",
    "read_schedule_section",
    "sanitize_task_name",
]
