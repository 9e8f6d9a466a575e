"""Request and response bodies: camelCase JSON like the backup format, validated by pydantic.

Inputs forbid unknown fields (a typo is a 422, not a silent no-op) and pass the limits every
writer shares (`ops.core.limits`): text PostgreSQL can store (no NUL, no lone surrogate) of at
most 1 MB, index-sized external ids, sources, labels and names, and metadata at most 32
levels deep and 1 MB, so a stored value can always be indexed and served back.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, create_model, model_validator
from pydantic.alias_generators import to_camel

from ops.core.fields import (
    MAX_ID,
    CamelModel,
    Id,
    Indexed,
    InputModel,
    JsonObject,
    Minutes,
    Name,
    Priority,
    Status,
    Text,
    checked,
)
from ops.core.limits import MAX_LIST_ITEMS, check_text
from ops.workitems.model import WorkItem

# Names and titles of what the API creates itself (the sync takes the tracker's as they are).
Title = Annotated[str, Field(min_length=1, max_length=2000), checked(check_text)]
# Query-string filters compare with indexed columns; a NUL would fail in PostgreSQL.
NameQuery = Indexed


# --- auth ---------------------------------------------------------------------------------

class LoginRequest(InputModel):
    email: Annotated[str, Field(min_length=1, max_length=320), checked(check_text)]
    password: Annotated[str, Field(min_length=1, max_length=1024), checked(check_text)]
    tenant: Id | None = Field(default=None, description="The tenant's id, for an email "
                              "registered in several; without it the oldest account is used")


class UserOut(CamelModel):
    id: int
    email: str
    role: str
    tenant_id: int


class LoginResponse(CamelModel):
    token: str
    expires_at: datetime
    user: UserOut


class HealthOut(CamelModel):
    status: str
    database: str
    schema_revision: str | None = None
    head_revision: str | None = None


class ErrorOut(BaseModel):
    detail: str


class FieldError(BaseModel):
    field: str
    location: str
    message: str


class ValidationErrorOut(BaseModel):
    """The 422 body (api.errors): which fields, where, why; the input is never echoed."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)


# --- products and tags --------------------------------------------------------------------

class ProductOut(CamelModel):
    id: int
    tenant_id: int
    name: str
    description: str | None
    is_active: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TagCreate(InputModel):
    name: Name
    color: Annotated[str, Field(max_length=50), checked(check_text)] | None = None
    description: Text | None = None


class TagOut(CamelModel):
    id: int
    name: str
    color: str | None
    description: str | None
    created_at: datetime


# --- epics, features, tasks ---------------------------------------------------------------

class WorkItemOut(CamelModel):
    id: int
    public_id: UUID
    product_id: int
    title: str
    description: str | None
    status: Status
    priority: Priority
    labels: list[str]
    metadata: dict[str, Any]
    external_source: str | None
    external_id: str | None
    created_by: int | None
    assignee_id: int | None
    due_date: date | None
    closed_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EpicOut(WorkItemOut):
    pass


class FeatureOut(WorkItemOut):
    epic_id: int | None


class TaskOut(WorkItemOut):
    epic_id: int | None
    feature_id: int | None
    parent_task_id: int | None
    task_type: str
    estimate_minutes: int | None


class WorkItemFields(InputModel):
    """Fields every kind accepts on create and update."""

    description: Text | None = None
    status: Status = "backlog"
    priority: Priority = "medium"
    labels: list[Name] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    metadata: JsonObject = Field(default_factory=dict)
    external_source: Name | None = None
    external_id: Name | None = None
    assignee_id: Id | None = None
    due_date: date | None = None
    closed_at: datetime | None = None


class EpicCreate(WorkItemFields):
    product_id: Id
    title: Title


class FeatureCreate(EpicCreate):
    epic_id: Id | None = None


class TaskCreate(EpicCreate):
    epic_id: Id | None = None
    feature_id: Id | None = None
    parent_task_id: Id | None = None
    task_type: Name = "task"
    estimate_minutes: Minutes | None = None


# Columns that may not be set to null by a PATCH (they are NOT NULL in the schema).
NOT_NULL_ON_UPDATE = ("title", "status", "priority", "labels", "metadata", "task_type")


class _UpdateMixin(InputModel):
    @model_validator(mode="after")
    def _no_null_for_required(self) -> _UpdateMixin:
        for name in NOT_NULL_ON_UPDATE:
            if name in self.model_fields_set and getattr(self, name, None) is None:
                raise ValueError(f"{to_camel(name)} may not be null")
        return self


def _optional(model: type[InputModel], name: str,
              exclude: tuple[str, ...] = ()) -> type[InputModel]:
    """A PATCH body: the create model's fields (same constraints), all optional."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name not in exclude:
            # a type built at run time from the model's own field metadata:
            constrained: Any = info.annotation
            if info.metadata:
                constrained = Annotated[(constrained, *info.metadata)]
            fields[field_name] = (constrained | None, None)
    return create_model(name, __base__=_UpdateMixin, **fields)


EpicUpdate = _optional(EpicCreate, "EpicUpdate", exclude=("product_id",))
FeatureUpdate = _optional(FeatureCreate, "FeatureUpdate", exclude=("product_id",))
TaskUpdate = _optional(TaskCreate, "TaskUpdate", exclude=("product_id",))


# --- list filters (query strings) ---------------------------------------------------------

class EpicFilters(CamelModel):
    product_id: Id | None = None
    status: Status | None = None
    priority: Priority | None = None
    external_source: NameQuery | None = None
    external_id: NameQuery | None = None
    assignee_id: Id | None = None
    include_deleted: bool = False
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=MAX_ID)] = 0


class FeatureFilters(EpicFilters):
    epic_id: Id | None = None


class TaskFilters(FeatureFilters):
    feature_id: Id | None = None
    parent_task_id: Id | None = None
    task_type: NameQuery | None = None


PAGING = frozenset({"include_deleted", "limit", "offset"})


# --- bulk sync: the work-item model itself (ops.workitems.model), limits included -----------
# The same limits as the direct import (ops.core.limits), no others: the API accepts what it does.

MAX_SYNC_ITEMS = 20_000


class SyncRequest(InputModel):
    """One request of a sync: `items` runs phase 1 (items, tags, comments), `dependencies`
    phase 2, `all` both in one transaction (what a dry run over the API uses)."""

    phase: Literal["items", "dependencies", "all"] = "items"
    dry_run: bool = False
    items: list[WorkItem] = Field(max_length=MAX_SYNC_ITEMS)

