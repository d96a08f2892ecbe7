"""The JSON Schema of config documents, for editors to complete and check YAML.

Example:
    >>> schema = json_schema()
    >>> [option["$ref"] for option in schema["anyOf"]]
    ['#/$defs/ConfigDocument', '#/$defs/OptimizerConfig']
    >>> "AdamW" in schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]["anyOf"][0]["enum"]
    True
"""

from __future__ import annotations

from typing import Any

import pydantic

from optforge.config import ConfigDocument, OptimizerConfig
from optforge.registry import list_optimizers

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config document; registered optimizer names are offered for ``optimizer.name``."""
    # A document is either the wrapped form (optimizer:, schedule:, ...) or the typed form itself.
    schema = pydantic.TypeAdapter(ConfigDocument | OptimizerConfig).json_schema()
    name = schema["$defs"]["FlatOptimizerConfig"]["properties"]["name"]
    name["anyOf"] = [{"enum": list_optimizers()}, {"type": "string"}]
    name.pop("type", None)
    # A rule's keys other than its selectors and settings are optimizer hyperparameters.
    schema["$defs"]["ParamGroupRule"]["additionalProperties"] = True
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "optforge config"
    return schema
