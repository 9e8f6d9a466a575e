"""pydantic field types that apply the shared limits (ops.core.limits), for every model that
accepts data from outside: the work-item model and the API's request bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic.alias_generators import to_camel

from ops.core.limits import check_indexed, check_json, check_text
from ops.core.vocabulary import PRIORITIES, WORK_STATUSES

MAX_ID = 2**63 - 1
MAX_MINUTES = 2**31 - 1  # what an integer column (tasks.estimate_minutes) holds


def checked(check: Callable[[Any, str], Any]) -> AfterValidator:
    """One of the shared limit checks as a pydantic validator naming the (camelCase) field."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        return check(value, to_camel(info.field_name or "value"))

    return AfterValidator(validate)


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Minutes = Annotated[int, Field(ge=0, le=MAX_MINUTES)]
Text = Annotated[str, checked(check_text)]
# Stored in a unique index: external ids and sources, labels (tag names), dependency types.
Indexed = Annotated[str, checked(check_indexed)]
Name = Annotated[str, Field(min_length=1), checked(check_indexed)]
Title = Annotated[str, Field(min_length=1), checked(check_text)]
JsonObject = Annotated[dict[str, Any], checked(check_json)]
# the values come from one tuple, so they are not repeated here:
Status = Literal[WORK_STATUSES]  # type: ignore[valid-type]
# the values come from one tuple, so they are not repeated here:
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]


class CamelModel(BaseModel):
    """JSON with camelCase keys, like the backup format; Python code uses snake_case names."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class InputModel(CamelModel):
    """Data from outside: an unknown field is an error (a typo is not a silent no-op)."""

    model_config = ConfigDict(extra="forbid")
