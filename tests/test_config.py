"""Typed config models and the JSON Schema of config documents."""

from __future__ import annotations

import json

import pytest

import optforge
from optforge.config import AdamConfig, ConfigDocument, OptimizerConfig
from optforge.errors import ConfigError
from optforge.json_schema import json_schema


def test_design_defaults() -> None:
    assert AdamConfig(lr=0.1).betas == (0.9, 0.999)
    assert AdamConfig(lr=0.1).eps == 1e-7
    assert optforge.config.SgdConfig(lr=0.1).momentum == 0.0
    assert optforge.config.AdagradConfig(lr=0.1).eps == 0.0


def test_optimizer_config_chosen() -> None:
    cfg = OptimizerConfig(sgd={"lr": 0.1}, learning_rate={"constant": 0.1})
    name, sub = cfg.chosen()
    assert name == "sgd"
    assert sub.lr == 0.1
    assert cfg.learning_rate.constant == 0.1


def test_json_schema_is_json_and_covers_both_forms() -> None:
    schema = json_schema()
    json.dumps(schema)
    defs = schema["$defs"]
    assert defs["ConfigDocument"]["properties"]["optimizer"]["anyOf"][0]["$ref"] == "#/$defs/FlatOptimizerConfig"
    assert {"AdamConfig", "SgdConfig", "AdagradConfig", "OptimizerConfig", "LearningRate"} <= set(defs)
    assert defs["AdamConfig"]["additionalProperties"] is False
    assert defs["FlatOptimizerConfig"]["properties"]["name"]["$ref"] == "#/$defs/OptimizerName"
    assert "AdamW" in defs["OptimizerName"]["anyOf"][0]["enum"]


def test_document_model_rejects_unknown_keys() -> None:
    from optforge._validation import parse_model

    with pytest.raises(ConfigError, match="schedul: unknown key; did you mean 'schedule'"):
        parse_model(ConfigDocument, {"optimizer": {"name": "SGD"}, "schedul": {}})


def test_every_example_config_is_a_valid_document() -> None:
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert examples, "no example configs found"
    for path in examples:
        document = optforge.parse_document(path)
        assert document.optimizer is not None, path.name
