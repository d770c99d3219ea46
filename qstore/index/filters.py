"""Metadata filters: a Mongo-style operator set compiled once into a predicate.

Grammar (documented in docs/PROTOCOL.md):
    filter  := {clause, ...}                       all clauses must hold
    clause  := field: value                        shorthand for {"$eq": value}
             | field: {op: operand, ...}           op in $eq $ne $gt $gte $lt $lte $in $nin $exists
             | "$and": [filter, ...] | "$or": [filter, ...] | "$not": filter
Semantics: a list-valued field matches $eq/$in when any element does (as in Qdrant);
$ne and $nin are the negations, so they match records lacking the field. Values of
different kinds (bool, number, string, null) never compare equal or ordered.
A filter nests at most MAX_DEPTH logical operators and holds at most MAX_TERMS conditions and
operands, so neither compiling nor evaluating it can recurse or loop without bound.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qstore.errors import InvalidArgument, LimitExceeded

Predicate = Callable[[dict[str, Any]], bool]
MAX_DEPTH = 32
MAX_TERMS = 4096
_MISSING = object()
FIELD_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(msg + "; see the filter grammar in docs/PROTOCOL.md", "invalid_filter")


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return "other"


def _scalar(v: Any, where: str) -> Any:
    if _kind(v) == "other":
        raise _bad(f"{where} needs a string, number, bool or null, got {type(v).__name__}")
    return v


def _eq(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def _values(field_value: Any) -> list[Any]:
    return field_value if isinstance(field_value, list) else [field_value]


def _compare(op: str, operand: Any) -> Callable[[Any], bool]:
    kind = _kind(operand)
    if kind not in ("num", "str"):
        raise _bad(f"{op} needs a number or string operand, got {operand!r}")
    test = {"$gt": lambda a: a > operand, "$gte": lambda a: a >= operand,
            "$lt": lambda a: a < operand, "$lte": lambda a: a <= operand}[op]
    return lambda v: any(_kind(x) == kind and test(x) for x in _values(v)) if v is not _MISSING else False


def _field_op(op: str, operand: Any) -> Callable[[Any], bool]:
    if op == "$eq":
        x = _scalar(operand, op)
        return lambda v: v is not _MISSING and any(_eq(e, x) for e in _values(v))
    if op == "$ne":
        x = _scalar(operand, op)
        return lambda v: v is _MISSING or not any(_eq(e, x) for e in _values(v))
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _bad(f"{op} needs a list operand, got {type(operand).__name__}")
        items = [_scalar(x, op) for x in operand]
        hit = lambda v: v is not _MISSING and any(_eq(e, x) for e in _values(v) for x in items)  # noqa: E731
        return hit if op == "$in" else (lambda v: not hit(v))
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _bad("$exists needs true or false")
        return lambda v: (v is not _MISSING) == operand
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(op, operand)
    raise _bad(f"unknown operator {op!r}; allowed: {', '.join(FIELD_OPS)}, $and, $or, $not")


def _field(name: str, cond: Any) -> Predicate:
    if isinstance(cond, dict):
        if not cond:
            raise _bad(f"empty condition for field {name!r}")
        tests = []
        for op, operand in cond.items():
            if not isinstance(op, str) or not op.startswith("$"):
                raise _bad(f"field {name!r}: expected operators like $eq, got key {op!r}")
            tests.append(_field_op(op, operand))
    else:
        tests = [_field_op("$eq", cond)]
    return lambda md: all(t(md.get(name, _MISSING)) for t in tests)


def compile_filter(doc: Any) -> Predicate:
    """Validate ``doc`` and return a predicate over a metadata dict."""
    _check_size(doc)
    return _compile(doc)


def _check_size(doc: Any) -> None:
    """Depth and term bounds, checked without recursion before anything recurses."""
    terms, stack = 0, [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"a filter nests at most {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            terms += 1
            stack.append((child, depth + 1))
        if terms > MAX_TERMS:
            raise LimitExceeded(f"a filter holds at most {MAX_TERMS} terms")


def _compile(doc: Any) -> Predicate:
    if not isinstance(doc, dict):
        raise _bad(f"a filter must be a map, got {type(doc).__name__}")
    parts: list[Predicate] = []
    for key, val in doc.items():
        if not isinstance(key, str) or not key:
            raise _bad(f"filter keys must be non-empty strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(val, list) or not val:
                raise _bad(f"{key} needs a non-empty list of filters")
            subs = [_compile(v) for v in val]
            parts.append((lambda s: lambda md: all(p(md) for p in s))(subs) if key == "$and"
                         else (lambda s: lambda md: any(p(md) for p in s))(subs))
        elif key == "$not":
            sub = _compile(val)
            parts.append(lambda md, sub=sub: not sub(md))
        elif key.startswith("$"):
            raise _bad(f"unknown logical operator {key!r}; allowed: $and, $or, $not")
        else:
            parts.append(_field(key, val))
    return lambda md: all(p(md) for p in parts)
