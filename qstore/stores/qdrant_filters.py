"""Q-Store metadata filters (``qstore.index.filters``) as Qdrant filters, or a refusal.

Every filter that translates selects exactly the records ``compile_filter`` would (the parity
suite checks this against brute force); anything whose Qdrant meaning differs is refused with
``filter_untranslatable`` rather than evaluated differently:
  * string comparisons ($gt … on strings): Qdrant ranges are numeric only;
  * numbers beyond ±2^53, which Qdrant's float ranges cannot tell apart;
  * metadata keys holding '.', '[', ']' or '"' (Qdrant reads them as a path);
  * null operands ($eq null, $in [.., null]): Qdrant's is_null differs on lists.
Metadata lives under the payload key ``m``; ``mk`` lists its keys, so $exists is exact (Qdrant's
is_empty also matches null and [] values, which exist for Q-Store).
"""
from __future__ import annotations

from typing import Any

from qdrant_client import models

from qstore.errors import InvalidArgument
from qstore.index.filters import compile_filter

_EXACT_INT = 2**53
_PATH_CHARS = set('.[]"')


def _refuse(msg: str) -> InvalidArgument:
    return InvalidArgument(msg + "; the Qdrant store cannot evaluate it exactly (docs/STORES.md)",
                           "filter_untranslatable")


def _key(name: str) -> str:
    if _PATH_CHARS & set(name):
        raise _refuse(f"metadata key {name!r} holds a path character")
    return "m." + name


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _equals(key: str, x: Any) -> models.Condition:
    """Some element of the field equals ``x`` (same kind: bool, number or string)."""
    if x is None:
        raise _refuse("null operands do not translate")
    if isinstance(x, bool) or isinstance(x, str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=x))
    if abs(x) > _EXACT_INT:
        raise _refuse(f"number {x!r} is beyond ±2^53")
    return models.FieldCondition(key=key, range=models.Range(gte=float(x), lte=float(x)))


def _never() -> models.Filter:
    return models.Filter(must=[models.HasIdCondition(has_id=[])])


def _any_of(key: str, items: list[Any]) -> models.Filter:
    if not items:
        return _never()
    return models.Filter(should=[_equals(key, x) for x in items])


def _field_op(name: str, op: str, operand: Any) -> models.Filter:
    key = _key(name)
    if op == "$eq":
        return models.Filter(must=[_equals(key, operand)])
    if op == "$ne":
        return models.Filter(must_not=[_equals(key, operand)])
    if op == "$in":
        return _any_of(key, operand)
    if op == "$nin":
        return models.Filter(must_not=[_any_of(key, operand)])
    if op == "$exists":
        present = models.FieldCondition(key="mk", match=models.MatchValue(value=name))
        return models.Filter(must=[present]) if operand else models.Filter(must_not=[present])
    # $gt $gte $lt $lte
    if not _number(operand):
        raise _refuse(f"{op} on a string does not translate")
    if abs(operand) > _EXACT_INT:
        raise _refuse(f"number {operand!r} is beyond ±2^53")
    bound = {op[1:]: float(operand)}
    return models.Filter(must=[models.FieldCondition(key=key, range=models.Range(**bound))])


def _translate(doc: dict[str, Any]) -> models.Filter:
    parts: list[models.Filter] = []
    for key, val in doc.items():
        if key == "$and":
            parts.extend(_translate(v) for v in val)
        elif key == "$or":
            parts.append(models.Filter(should=[_translate(v) for v in val]))
        elif key == "$not":
            parts.append(models.Filter(must_not=[_translate(val)]))
        elif isinstance(val, dict):
            parts.extend(_field_op(key, op, operand) for op, operand in val.items())
        else:
            parts.append(_field_op(key, "$eq", val))
    return models.Filter(must=list(parts))


def translate(doc: dict[str, Any]) -> models.Filter:
    """The Qdrant filter selecting the points whose record metadata matches ``doc``."""
    compile_filter(doc)  # the same validation, limits and error codes as the LMDB store
    return _translate(doc)
