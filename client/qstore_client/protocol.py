"""The Q-Store wire protocol: body formats, value encodings and the operation table.

Shared by the server (decode requests, encode results) and the client (the reverse),
so both ends agree by construction. docs/PROTOCOL.md is the prose version of this module.

Layers:
  * body format: msgpack (default) or JSON, chosen by Content-Type / Accept;
  * value kinds: how one field travels (vectors as raw little-endian float32 bytes with a
    shape, complex numbers as [re, im], documents with tagged arrays);
  * operations: for each API call, its body fields (required / optional) and result kind.
Success bodies are {"result": ...}; failures are {"error": {"code", "message"}}.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from .errors import QStoreError, error
from .types import Branch, Hit, Measurement, Page, Record

MSGPACK = "application/msgpack"
JSON = "application/json"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
PREFIX = "/v1"

# Short dtype names on the wire -> NumPy little-endian dtypes.
DTYPES: dict[str, np.dtype] = {
    "f16": np.dtype("<f2"), "f32": np.dtype("<f4"), "f64": np.dtype("<f8"),
    "c64": np.dtype("<c8"), "c128": np.dtype("<c16"),
    "i8": np.dtype("i1"), "i16": np.dtype("<i2"), "i32": np.dtype("<i4"), "i64": np.dtype("<i8"),
    "u8": np.dtype("u1"), "u16": np.dtype("<u2"), "u32": np.dtype("<u4"), "u64": np.dtype("<u8"),
    "bool": np.dtype("?"),
}
DTYPE_NAMES: dict[np.dtype, str] = {dt.newbyteorder("="): name for name, dt in DTYPES.items()}


@dataclass(frozen=True)
class Limits:
    """Server-side request limits (documented in PROTOCOL.md, configurable on `qstore serve`)."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_batch: int = 10_000
    max_dim: int = 4096
    max_top_k: int = 1000

    def check(self, name: str, value: int, what: str) -> None:
        bound = getattr(self, name)
        if value > bound:
            raise error("limit_exceeded", f"{what} is {value}, over the server limit {name}={bound}")


NO_LIMITS = Limits(max_body_bytes=2**62, max_batch=2**62, max_dim=2**62, max_top_k=2**62)


# ---------------------------------------------------------------------------- body format

def is_msgpack(content_type: str) -> bool:
    return content_type in MSGPACK_TYPES


def wants_json(accept: str, content_type: str) -> bool:
    """JSON replies only when asked: Accept names JSON, or a JSON request did not ask for msgpack."""
    if "msgpack" in accept:
        return False
    return JSON in accept or content_type == JSON


def dumps(obj: Any, binary: bool) -> bytes:
    if binary:
        return msgpack.packb(obj, use_bin_type=True)
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(raw: bytes, content_type: str) -> Any:
    """Parse a body by its media type; any parse failure is `malformed_body`."""
    if is_msgpack(content_type):
        try:
            return msgpack.unpackb(raw, raw=False)
        except (ValueError, msgpack.UnpackException, RecursionError) as exc:
            raise error("malformed_body", f"body is not valid msgpack: {exc}") from None
    if content_type == JSON:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise error("malformed_body", f"body is not valid JSON: {exc}") from None
    raise error("unsupported_media_type",
                f"Content-Type {content_type or '(none)'!r} is not supported; use {MSGPACK} or {JSON}")


def error_from_body(body: Any) -> QStoreError | None:
    """The error an `{"error": {...}}` body carries, or None if it is not one."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        if isinstance(err.get("code"), str):
            return error(err["code"], str(err.get("message", "")))
    return None


# ---------------------------------------------------------------------------- value kinds

class Kind:
    """How one value travels: `encode` to the wire tree, `decode` (with validation) back."""

    code = "invalid_argument"

    def encode(self, value: Any, binary: bool) -> Any:
        return value

    def decode(self, wire: Any, field: str, limits: Limits) -> Any:
        return wire

    def fail(self, field: str, why: str) -> QStoreError:
        return error(self.code, f"{field}: {why}")


class Text(Kind):
    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def decode(self, wire: Any, field: str, limits: Limits) -> str:
        if not isinstance(wire, str):
            raise self.fail(field, f"expected a string, got {type(wire).__name__}")
        return wire


class Integer(Kind):
    def __init__(self, code: str = "invalid_argument", limit: str | None = None):
        self.code = code
        self.limit = limit

    def encode(self, value: Any, binary: bool) -> Any:
        # NumPy integers become ints; anything else travels as given for the server to judge.
        return int(value) if isinstance(value, np.integer) else value

    def decode(self, wire: Any, field: str, limits: Limits) -> int:
        if isinstance(wire, bool) or not isinstance(wire, int):
            raise self.fail(field, f"expected an integer, got {type(wire).__name__}")
        if self.limit is not None:
            limits.check(self.limit, wire, field)
        return wire


class Number(Kind):
    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def encode(self, value: Any, binary: bool) -> Any:
        return value.item() if isinstance(value, (np.integer, np.floating)) else value

    def decode(self, wire: Any, field: str, limits: Limits) -> float:
        if isinstance(wire, bool) or not isinstance(wire, (int, float)):
            raise self.fail(field, f"expected a number, got {type(wire).__name__}")
        return float(wire)


class Flag(Kind):
    def decode(self, wire: Any, field: str, limits: Limits) -> bool:
        if not isinstance(wire, bool):
            raise self.fail(field, f"expected true or false, got {type(wire).__name__}")
        return wire


class Nullable(Kind):
    def __init__(self, inner: Kind):
        self.inner = inner
        self.code = inner.code

    def encode(self, value: Any, binary: bool) -> Any:
        return None if value is None else self.inner.encode(value, binary)

    def decode(self, wire: Any, field: str, limits: Limits) -> Any:
        return None if wire is None else self.inner.decode(wire, field, limits)


class ListOf(Kind):
    """A list of one kind; `limit` bounds its length by a Limits field (e.g. max_batch)."""

    def __init__(self, item: Kind, code: str = "invalid_argument", limit: str | None = None):
        self.item = item
        self.code = code
        self.limit = limit

    def encode(self, value: Any, binary: bool) -> Any:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            return value  # not a list: the server answers with this field's code
        return [self.item.encode(v, binary) for v in value]

    def decode(self, wire: Any, field: str, limits: Limits) -> list:
        if not isinstance(wire, list):
            raise self.fail(field, f"expected a list, got {type(wire).__name__}")
        if self.limit is not None:
            limits.check(self.limit, len(wire), f"length of {field}")
        return [self.item.decode(v, f"{field}[{i}]", limits) for i, v in enumerate(wire)]


class Mapping(Kind):
    """A map with string keys, passed through as is (metadata, filters, index specs)."""

    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def decode(self, wire: Any, field: str, limits: Limits) -> dict:
        if not isinstance(wire, dict) or not all(isinstance(k, str) for k in wire):
            raise self.fail(field, "expected a map with string keys")
        return wire


def _tensor_bytes(data: Any, field: str, code: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):  # JSON cannot carry bytes: base64 there
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise error(code, f"{field}.data: invalid base64") from None
    raise error(code, f"{field}.data: expected bytes")


def decode_tensor(wire: dict, field: str, code: str) -> np.ndarray:
    """{"dtype", "shape", "data"} -> a writable array (raw little-endian bytes, C order)."""
    if set(wire) != {"dtype", "shape", "data"}:
        raise error(code, f"{field}: a tensor has exactly the keys dtype, shape, data")
    dtype = DTYPES.get(wire["dtype"]) if isinstance(wire["dtype"], str) else None
    if dtype is None:
        raise error(code, f"{field}.dtype: expected one of {sorted(DTYPES)}")
    shape = wire["shape"]
    if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise error(code, f"{field}.shape: expected a list of non-negative integers")
    data = _tensor_bytes(wire["data"], field, code)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise error(code, f"{field}: shape {shape} of {wire['dtype']} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def encode_tensor(array: np.ndarray, binary: bool) -> dict:
    array = np.asarray(array)
    name = DTYPE_NAMES.get(array.dtype.newbyteorder("="))
    if name is None:
        raise error("invalid_argument", f"arrays of dtype {array.dtype} cannot travel")
    data = np.ascontiguousarray(array, dtype=DTYPES[name]).tobytes()
    return {"dtype": name, "shape": list(array.shape),
            "data": data if binary else base64.b64encode(data).decode()}


class Floats(Kind):
    """Finite float32 numbers: one vector (1-D) or a batch (2-D), as raw bytes or (JSON) nested lists.

    Either rank is accepted wherever vectors go, as in the embedded API; whether the shape
    fits the call (one row for query, n rows for n ids, the collection's dim) is the engine's
    check, so both modes answer bad shapes with the same error.
    """

    def __init__(self, limit: str | None = None, code: str = "invalid_vector"):
        self.limit = limit
        self.code = code

    def encode(self, value: Any, binary: bool) -> Any:
        array = np.asarray(value, dtype=np.float32)
        if binary:
            return {"dtype": "f32", "shape": list(array.shape), "data": array.astype("<f4", copy=False).tobytes()}
        return array.tolist()

    def decode(self, wire: Any, field: str, limits: Limits) -> np.ndarray:
        if isinstance(wire, dict):
            array = decode_tensor(wire, field, self.code)
            if array.dtype != np.float32:
                raise self.fail(field, f"vectors are f32, got {wire['dtype']}")
        elif isinstance(wire, list):
            try:
                array = np.array(wire, dtype=np.float32)
            except (TypeError, ValueError, OverflowError):
                raise self.fail(field, "expected numbers in a rectangular list") from None
        else:
            raise self.fail(field, "expected a tensor {dtype, shape, data} or a list of numbers")
        if array.ndim not in (1, 2):
            raise error("dimension_mismatch", f"{field}: expected 1-D or 2-D, got shape {list(array.shape)}")
        if self.limit is not None and array.ndim == 2:
            limits.check(self.limit, array.shape[0], f"rows of {field}")
        limits.check("max_dim", array.shape[-1], f"dimension of {field}")
        if not np.isfinite(array).all():
            raise self.fail(field, "NaN and Inf are not allowed")
        return array


class Complex(Kind):
    """A complex number as [re, im]; a plain real number is accepted."""

    code = "invalid_amplitudes"

    def __init__(self, code: str = "invalid_amplitudes"):
        self.code = code

    def encode(self, value: Any, binary: bool) -> list[float]:
        value = complex(value)
        return [value.real, value.imag]

    def decode(self, wire: Any, field: str, limits: Limits) -> complex:
        if isinstance(wire, (int, float)) and not isinstance(wire, bool):
            value = complex(wire)
        elif (isinstance(wire, list) and len(wire) == 2
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in wire)):
            value = complex(wire[0], wire[1])
        else:
            raise self.fail(field, "expected [re, im] or a real number")
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            raise self.fail(field, "NaN and Inf are not allowed")
        return value


class StateVector(Kind):
    """A complex128 state: raw bytes (c128, interleaved re/im float64), or a list of [re, im]."""

    code = "invalid_state"

    def encode(self, value: Any, binary: bool) -> Any:
        array = np.asarray(value, dtype=np.complex128)
        if binary:
            return encode_tensor(array, True)
        return [[float(z.real), float(z.imag)] for z in array.ravel()]

    def decode(self, wire: Any, field: str, limits: Limits) -> np.ndarray:
        if isinstance(wire, dict):
            array = decode_tensor(wire, field, self.code).astype(np.complex128, copy=False)
        elif isinstance(wire, list):
            scalar = Complex(self.code)
            array = np.array([scalar.decode(v, f"{field}[{i}]", limits) for i, v in enumerate(wire)],
                             dtype=np.complex128)
        else:
            raise self.fail(field, "expected a c128 tensor or a list of [re, im]")
        if array.ndim != 1:
            raise self.fail(field, f"expected 1-D, got shape {list(array.shape)}")
        if not np.isfinite(array).all():
            raise self.fail(field, "NaN and Inf are not allowed")
        return array


class Labels(Kind):
    """Dataset labels: a list of ints / floats / strings, or a numeric tensor."""

    code = "invalid_labels"

    def encode(self, value: Any, binary: bool) -> Any:
        array = np.asarray(value)
        if array.dtype.kind in "iufb" and array.ndim == 1:
            return encode_tensor(array, binary)
        return array.tolist()

    def decode(self, wire: Any, field: str, limits: Limits) -> np.ndarray:
        if isinstance(wire, dict):
            array = decode_tensor(wire, field, self.code)
        elif isinstance(wire, list) and all(
                isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in wire):
            array = np.asarray(wire)
        else:
            raise self.fail(field, "expected a list of ints, floats or strings, or a tensor")
        if array.ndim != 1:
            raise self.fail(field, f"expected 1-D, got shape {list(array.shape)}")
        return array


class Document(Kind):
    """A free-form document (checkpoints, info, job params and results).

    Maps, lists, strings, numbers, booleans and null travel as themselves; NumPy arrays as
    {"$ndarray": tensor}, complex numbers as {"$complex": [re, im]}, bytes as msgpack bin
    (JSON: {"$bytes": base64}). Tuples become lists; NumPy scalars become plain numbers.
    """

    def __init__(self, map_only: bool = False):
        self.map_only = map_only

    def encode(self, value: Any, binary: bool) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, dict):
            return {self._key(k): self.encode(v, binary) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.encode(v, binary) for v in value]
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "U":
                return {"$ndarray": {"dtype": "str", "shape": list(value.shape), "data": value.ravel().tolist()}}
            return {"$ndarray": encode_tensor(value, binary)}
        if isinstance(value, np.generic):
            return self.encode(value.item(), binary)
        if isinstance(value, complex):
            return {"$complex": [value.real, value.imag]}
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value) if binary else {"$bytes": base64.b64encode(bytes(value)).decode()}
        raise error("invalid_argument", f"a {type(value).__name__} cannot travel in a document")

    @staticmethod
    def _key(key: Any) -> str:
        if not isinstance(key, str):
            raise error("invalid_argument", f"document keys must be strings, got {type(key).__name__}")
        return key

    def decode(self, wire: Any, field: str, limits: Limits) -> Any:
        if self.map_only and not isinstance(wire, dict):
            raise error("invalid_argument", f"{field}: expected a map, got {type(wire).__name__}")
        return self._decode(wire, field, limits)

    def _decode(self, wire: Any, field: str, limits: Limits) -> Any:
        if isinstance(wire, dict):
            if len(wire) == 1:
                (tag, inner), = wire.items()
                if tag == "$ndarray" and isinstance(inner, dict):
                    if inner.get("dtype") == "str" and isinstance(inner.get("data"), list):
                        return np.array(inner["data"], dtype=str).reshape(inner.get("shape", [-1]))
                    return decode_tensor(inner, field, "invalid_argument")
                if tag == "$complex":
                    return Complex("invalid_argument").decode(inner, field, limits)
                if tag == "$bytes" and isinstance(inner, str):
                    return _tensor_bytes(inner, field, "invalid_argument")
            return {k: self._decode(v, f"{field}.{k}", limits) for k, v in wire.items()}
        if isinstance(wire, list):
            return [self._decode(v, field, limits) for v in wire]
        if wire is None or isinstance(wire, (bool, int, float, str, bytes)):
            return wire
        raise error("invalid_argument", f"{field}: unsupported value {type(wire).__name__}")


VECTOR = Floats()
DOCUMENT = Document()
RECORD_ID = Text("invalid_id")
METADATA = Mapping("invalid_metadata")


class BranchKind(Kind):
    """A branch: {"vector", "context", "amplitude"}; decodes to the (vector, context, amplitude)
    tuple that `superpose` takes, encodes from a `Branch`."""

    code = "invalid_argument"
    fields = {"vector": VECTOR, "context": Nullable(Text()), "amplitude": Complex()}

    def encode(self, value: Any, binary: bool) -> dict:
        if isinstance(value, Branch):
            vector, context, amplitude = value.vector, value.context, value.amplitude
        else:
            vector, context, amplitude = _branch_tuple(value)
        return {"vector": VECTOR.encode(vector, binary), "context": context,
                "amplitude": Complex().encode(amplitude, binary)}

    def decode(self, wire: Any, field: str, limits: Limits) -> tuple:
        args = decode_fields(wire, self.fields, {"vector"}, field, limits)
        return args["vector"], args.get("context"), args.get("amplitude", 1.0 + 0.0j)

    def to_branch(self, wire: Any, field: str) -> Branch:
        vector, context, amplitude = self.decode(wire, field, NO_LIMITS)
        return Branch(vector=vector, context=context, amplitude=amplitude)


def _branch_tuple(value: Any) -> tuple:
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return tuple(value)
    raise error("invalid_argument", "each branch is (vector, context, amplitude)")


BRANCH = BranchKind()


class RecordKind(Kind):
    def encode(self, rec: Record, binary: bool) -> dict:
        return {"id": rec.id, "vector": VECTOR.encode(rec.vector, binary), "metadata": rec.metadata,
                "branches": [BRANCH.encode(b, binary) for b in rec.branches],
                "expires_at": rec.expires_at, "version": rec.version}

    def decode(self, wire: Any, field: str, limits: Limits) -> Record:
        return Record(id=wire["id"], vector=VECTOR.decode(wire["vector"], field, limits),
                      metadata=wire["metadata"],
                      branches=[BRANCH.to_branch(b, field) for b in wire["branches"]],
                      expires_at=wire["expires_at"], version=wire["version"])


RECORD = RecordKind()


class HitKind(Kind):
    def encode(self, hit: Hit, binary: bool) -> dict:
        return {"id": hit.id, "score": float(hit.score), "metadata": hit.metadata}

    def decode(self, wire: Any, field: str, limits: Limits) -> Hit:
        return Hit(id=wire["id"], score=wire["score"], metadata=wire["metadata"])


HITS = ListOf(HitKind())


class PageKind(Kind):
    def encode(self, page: Page, binary: bool) -> dict:
        return {"records": [RECORD.encode(r, binary) for r in page.records], "next_cursor": page.next_cursor}

    def decode(self, wire: Any, field: str, limits: Limits) -> Page:
        return Page(records=[RECORD.decode(r, field, limits) for r in wire["records"]],
                    next_cursor=wire["next_cursor"])


class MeasurementKind(Kind):
    def encode(self, m: Measurement, binary: bool) -> dict:
        return {"context": m.context, "vector": VECTOR.encode(m.vector, binary), "probability": float(m.probability)}

    def decode(self, wire: Any, field: str, limits: Limits) -> Measurement:
        return Measurement(context=wire["context"], vector=VECTOR.decode(wire["vector"], field, limits),
                           probability=wire["probability"])


class DatasetKind(Kind):
    """(X, y) as {"X": document array, "y": document array}."""

    def encode(self, value: tuple, binary: bool) -> dict:
        X, y = value
        return {"X": DOCUMENT.encode(np.asarray(X), binary), "y": DOCUMENT.encode(np.asarray(y), binary)}

    def decode(self, wire: Any, field: str, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
        return DOCUMENT.decode(wire["X"], field, limits), DOCUMENT.decode(wire["y"], field, limits)


class CountsKind(Kind):
    """Bitstring -> count, with counts as plain ints."""

    def encode(self, counts: dict, binary: bool) -> dict:
        return {str(k): int(v) for k, v in counts.items()}


def decode_fields(body: Any, fields: dict[str, Kind], required: set[str] | frozenset[str],
                  where: str, limits: Limits) -> dict[str, Any]:
    """Validate a request map: no unknown keys, every required key, each value by its kind."""
    if not isinstance(body, dict):
        raise error("malformed_body", f"{where}: expected a map, got {type(body).__name__}")
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise error("unknown_field", f"{where}: unknown field(s) {sorted(map(str, unknown))}; "
                                     f"allowed: {sorted(fields)}")
    missing = [k for k in required if k not in body]
    if missing:
        raise error("missing_field", f"{where}: missing required field(s) {sorted(missing)}")
    return {k: fields[k].decode(v, k, limits) for k, v in body.items()}


# ---------------------------------------------------------------------------- operations

@dataclass(frozen=True)
class Op:
    """One API call on the wire: body fields, which are required, and the result's kind.

    `read` marks calls that change nothing: read-only keys may make them and the client
    retries them on transport failures.
    """

    name: str
    fields: dict[str, Kind]
    required: frozenset[str]
    result: Kind
    read: bool

    def encode_body(self, args: dict[str, Any], binary: bool) -> bytes:
        """Client side: the body for these keyword arguments (an optional None is left out).

        A value that cannot be encoded fails with its field's code, as the engine would.
        """
        body = {}
        for k, v in args.items():
            if v is None and k not in self.required:
                continue
            try:
                body[k] = self.fields[k].encode(v, binary)
            except (TypeError, ValueError, OverflowError) as exc:
                raise error(self.fields[k].code, f"{k}: {exc}") from None
        try:
            return dumps(body, binary)
        except (TypeError, ValueError, OverflowError) as exc:
            for k, v in body.items():  # find the culprit, only on this slow path
                try:
                    dumps(v, binary)
                except (TypeError, ValueError, OverflowError) as field_exc:
                    raise error(self.fields[k].code, f"{k}: {field_exc}") from None
            raise error("invalid_argument", str(exc)) from None

    def decode_args(self, body: Any, limits: Limits) -> dict[str, Any]:
        """Server side: validated keyword arguments for the engine call."""
        return decode_fields(body, self.fields, self.required, self.name, limits)

    def encode_result(self, value: Any, binary: bool) -> dict[str, Any]:
        return {"result": self.result.encode(value, binary)}

    def decode_result(self, body: Any) -> Any:
        if not isinstance(body, dict) or "result" not in body:
            raise error("internal", f"{self.name}: the server's reply has no result")
        return self.result.decode(body["result"], "result", NO_LIMITS)


def _op(name: str, fields: dict[str, Kind], required: set[str], result: Kind, read: bool = False) -> Op:
    return Op(name, fields, frozenset(required), result, read)


IDS = ListOf(RECORD_ID, "invalid_id", limit="max_batch")
TOP_K = Integer("invalid_top_k", limit="max_top_k")
FILTER = Nullable(Mapping("invalid_filter"))
COHERENCE = Nullable(Number("invalid_coherence_time"))
SEED = Nullable(Integer())
NAME = Text("invalid_name")
DESCRIPTOR = Mapping()  # {"name", "dim", "metric"}

OPS: dict[str, Op] = {op.name: op for op in [
    # database
    _op("health", {}, set(), DOCUMENT, read=True),
    _op("list_collections", {}, set(), ListOf(Text()), read=True),
    _op("create_collection", {
        "name": NAME, "dim": Integer("invalid_argument", limit="max_dim"), "metric": Text("invalid_metric"),
        "index": Nullable(Mapping("invalid_index")), "coherence_time": COHERENCE,
        "on_decohere": Text()}, {"name", "dim"}, DESCRIPTOR),
    _op("collection", {}, set(), DESCRIPTOR, read=True),
    _op("drop_collection", {}, set(), DOCUMENT),
    # collection
    _op("info", {}, set(), DOCUMENT, read=True),
    _op("count", {}, set(), Integer(), read=True),
    _op("upsert", {"ids": IDS, "vectors": Floats(limit="max_batch"),
                   "metadata": Nullable(ListOf(Nullable(METADATA), "invalid_metadata", limit="max_batch")),
                   "coherence_time": COHERENCE}, {"ids", "vectors"}, DOCUMENT),
    _op("get", {"ids": IDS}, {"ids"}, ListOf(Nullable(RECORD)), read=True),
    _op("delete", {"ids": IDS}, {"ids"}, DOCUMENT),
    _op("query", {"vector": VECTOR, "top_k": TOP_K, "filter": FILTER, "context": Nullable(Text()),
                  "tunneling": Nullable(Number("invalid_tunneling")), "seed": SEED,
                  "ef": Nullable(Integer()), "per_region": Nullable(Integer())},
        {"vector"}, HITS, read=True),
    _op("query_batch", {"vectors": Floats(limit="max_batch"), "top_k": TOP_K, "filter": FILTER},
        {"vectors"}, ListOf(HITS), read=True),
    _op("scroll", {"limit": Integer(limit="max_batch"), "cursor": Nullable(Text("invalid_cursor")),
                   "filter": FILTER}, set(), PageKind(), read=True),
    _op("superpose", {"id": RECORD_ID, "branches": ListOf(BRANCH, "invalid_amplitudes", limit="max_batch"),
                      "metadata": Nullable(METADATA), "coherence_time": COHERENCE}, {"id", "branches"}, DOCUMENT),
    _op("measure", {"id": RECORD_ID, "context": Nullable(Text()), "collapse": Flag(), "seed": SEED},
        {"id"}, MeasurementKind(), read=True),  # collapse=True makes it a write (server and client check)
    _op("entangle", {"group": Text(), "ids": IDS, "strength": Number("invalid_strength")},
        {"group", "ids"}, DOCUMENT),
    _op("disentangle", {"group": Text(), "ids": Nullable(IDS)}, {"group"}, DOCUMENT),
    _op("update", {"id": RECORD_ID, "vector": VECTOR}, {"id", "vector"}, DOCUMENT),
    _op("correlation", {"id_a": RECORD_ID, "id_b": RECORD_ID}, {"id_a", "id_b"}, Number(), read=True),
    _op("build_regions", {"n_regions": Nullable(Integer()), "seed": Integer()}, set(), Integer()),
    _op("sweep", {}, set(), Integer()),
    _op("backup", {"name": NAME}, {"name"}, DOCUMENT),  # admin scope
    # quantum states
    _op("put_state", {"id": RECORD_ID, "state": StateVector()}, {"id", "state"}, DOCUMENT),
    _op("get_state", {"id": RECORD_ID}, {"id"}, StateVector(), read=True),
    _op("measure_state", {"id": RECORD_ID, "shots": Integer(), "qubits": Nullable(ListOf(Integer())),
                          "seed": SEED}, {"id"}, CountsKind(), read=True),
    _op("delete_state", {"id": RECORD_ID}, {"id"}, DOCUMENT),
    # datasets and checkpoints
    _op("import_dataset", {"name": NAME, "X": Floats(code="invalid_features"), "y": Labels()},
        {"name", "X", "y"}, DESCRIPTOR),
    _op("list_datasets", {}, set(), ListOf(Text()), read=True),
    _op("dataset_info", {}, set(), DOCUMENT, read=True),
    _op("load_dataset", {}, set(), DatasetKind(), read=True),
    _op("save_checkpoint", {"checkpoint": Document(map_only=True), "id": Nullable(Text())}, {"checkpoint"}, Text()),
    _op("list_checkpoints", {}, set(), ListOf(DOCUMENT), read=True),
    _op("load_checkpoint", {}, set(), DOCUMENT, read=True),
    _op("delete_checkpoint", {}, set(), DOCUMENT),
    # jobs
    _op("job_kinds", {}, set(), ListOf(Text()), read=True),
    _op("start_job", {"kind": Text(), "params": Nullable(Document(map_only=True))}, {"kind"}, DOCUMENT),
    _op("list_jobs", {}, set(), ListOf(DOCUMENT), read=True),
    _op("job", {}, set(), DOCUMENT, read=True),
    _op("job_result", {}, set(), DOCUMENT, read=True),
    _op("cancel_job", {}, set(), DOCUMENT),
    _op("delete_job", {}, set(), DOCUMENT),
]}

# Which route serves each operation. {name} is a collection name, {id} a checkpoint or job id,
# both percent-encoded by clients. Record and state ids always travel in bodies (any UTF-8).
ROUTES: dict[str, tuple[str, str]] = {
    "health": ("GET", "/health"),
    "list_collections": ("GET", "/collections"),
    "create_collection": ("POST", "/collections"),
    "collection": ("GET", "/collections/{name}"),
    "drop_collection": ("DELETE", "/collections/{name}"),
    "info": ("GET", "/collections/{name}/info"),
    "count": ("GET", "/collections/{name}/count"),
    "upsert": ("POST", "/collections/{name}/upsert"),
    "get": ("POST", "/collections/{name}/get"),
    "delete": ("POST", "/collections/{name}/delete"),
    "query": ("POST", "/collections/{name}/query"),
    "query_batch": ("POST", "/collections/{name}/query_batch"),
    "scroll": ("POST", "/collections/{name}/scroll"),
    "superpose": ("POST", "/collections/{name}/superpose"),
    "measure": ("POST", "/collections/{name}/measure"),
    "entangle": ("POST", "/collections/{name}/entangle"),
    "disentangle": ("POST", "/collections/{name}/disentangle"),
    "update": ("POST", "/collections/{name}/update"),
    "correlation": ("POST", "/collections/{name}/correlation"),
    "build_regions": ("POST", "/collections/{name}/build_regions"),
    "sweep": ("POST", "/sweep"),
    "backup": ("POST", "/admin/backup"),
    "put_state": ("POST", "/states/put"),
    "get_state": ("POST", "/states/get"),
    "measure_state": ("POST", "/states/measure"),
    "delete_state": ("POST", "/states/delete"),
    "import_dataset": ("POST", "/datasets"),
    "list_datasets": ("GET", "/datasets"),
    "dataset_info": ("GET", "/datasets/{name}"),
    "load_dataset": ("GET", "/datasets/{name}/data"),
    "save_checkpoint": ("POST", "/checkpoints"),
    "list_checkpoints": ("GET", "/checkpoints"),
    "load_checkpoint": ("GET", "/checkpoints/{id}"),
    "delete_checkpoint": ("DELETE", "/checkpoints/{id}"),
    "job_kinds": ("GET", "/jobs/kinds"),
    "start_job": ("POST", "/jobs"),
    "list_jobs": ("GET", "/jobs"),
    "job": ("GET", "/jobs/{id}"),
    "job_result": ("GET", "/jobs/{id}/result"),
    "cancel_job": ("POST", "/jobs/{id}/cancel"),
    "delete_job": ("DELETE", "/jobs/{id}"),
}
