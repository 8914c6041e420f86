"""The context of an after-commit step as JSON, and back, for a task worker.

A queued step runs in another process, so it cannot share the run's context
object. The step declares the context fields it reads (``Step(uses=(...))``);
the engine encodes those fields, plus ``request_id``, ``user`` and
``metadata``, when the run commits, and the worker rebuilds a context of the
same class from them. Encoded are JSON scalars, ``Decimal``, ``UUID``, dates,
lists, tuples, dicts, dataclass instances and model instances; a model
instance travels as its primary key and is read again by the worker, so the
step sees the committed row, not a snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid
from importlib import import_module
from typing import Any, TypeVar

from django.apps import apps
from django.db import models

from orchestration.context import OperationContext
from orchestration.errors import DefinitionError

CtxT = TypeVar("CtxT", bound=OperationContext)

#: Fields of every context that travel with the declared ones.
BASE_FIELDS = ("request_id", "user", "metadata")


def _qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    found: Any = import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def encode(value: Any) -> Any:
    """``value`` as JSON-compatible data that ``decode`` turns back; TypeError otherwise."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, models.Model):
        if value.pk is None:
            raise TypeError(f"An unsaved {type(value).__name__} cannot be queued.")
        return {"$model": value._meta.label_lower, "pk": encode(value.pk)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "$dataclass": _qualified(type(value)),
            "fields": {
                field.name: encode(getattr(value, field.name))
                for field in dataclasses.fields(value)
                if field.init
            },
        }
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(item) for item in value]}
    if isinstance(value, dict):
        return {"$dict": [[encode(key), encode(item)] for key, item in value.items()]}
    raise TypeError(f"{type(value).__name__} values cannot be queued.")


def decode(data: Any) -> Any:
    """The value ``encode`` produced ``data`` from (model instances read again)."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if "$decimal" in data:
        return decimal.Decimal(data["$decimal"])
    if "$uuid" in data:
        return uuid.UUID(data["$uuid"])
    if "$datetime" in data:
        return datetime.datetime.fromisoformat(data["$datetime"])
    if "$date" in data:
        return datetime.date.fromisoformat(data["$date"])
    if "$model" in data:
        model = apps.get_model(data["$model"])
        return model._default_manager.get(pk=decode(data["pk"]))
    if "$dataclass" in data:
        kind = _import(data["$dataclass"])
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            raise TypeError(f"{data['$dataclass']} is not a dataclass.")
        return kind(**{name: decode(item) for name, item in data["fields"].items()})
    if "$tuple" in data:
        return tuple(decode(item) for item in data["$tuple"])
    if "$dict" in data:
        return {decode(key): decode(item) for key, item in data["$dict"]}
    raise TypeError(f"Unknown encoded value with keys {sorted(data)}.")


def snapshot(ctx: OperationContext, uses: tuple[str, ...], *, step: str) -> dict[str, Any]:
    """The encoded context a worker needs to run ``step``, which reads ``uses``."""
    names = {field.name for field in dataclasses.fields(ctx)}
    values: dict[str, Any] = {}
    for name in (*BASE_FIELDS, *uses):
        if name not in names:
            raise DefinitionError(
                f"Step {step!r} uses {name!r}, which is not a field of {type(ctx).__name__}."
            )
        value = getattr(ctx, name)
        if name == "user" and not isinstance(value, models.Model):
            value = None  # an anonymous user has no row to read again
        try:
            values[name] = encode(value)
        except TypeError as exc:
            raise DefinitionError(
                f"Step {step!r} runs after commit in a worker, but context field {name!r} "
                f"cannot be queued: {exc}"
            ) from exc
    return {"context": _qualified(type(ctx)), "fields": values}


def restore(data: dict[str, Any]) -> OperationContext:
    """A context of the recorded class holding the recorded fields.

    Other fields take their defaults; a required field the step did not declare
    is left unset, so reading it fails loudly instead of seeing a stale value.
    """
    kind = _import(data["context"])
    if not (isinstance(kind, type) and issubclass(kind, OperationContext)):
        raise TypeError(f"{data['context']} is not an OperationContext.")
    values = {name: decode(item) for name, item in data["fields"].items()}
    ctx = kind.__new__(kind)
    for field in dataclasses.fields(kind):
        if field.name in values:
            value = values[field.name]
        elif field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        object.__setattr__(ctx, field.name, value)
    return ctx
