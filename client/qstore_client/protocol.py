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
import re
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
    """Server-side bounds on every size or count a caller sends (documented in PROTOCOL.md,
    each one a `qstore serve --max-...` option). Over a bound is `413 limit_exceeded`."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_batch: int = 10_000
    max_dim: int = 4096
    max_top_k: int = 1000
    max_hits: int = 250_000         # rows x top_k of one query_batch (the reply's size)
    max_ef: int = 4096              # query ef, an index's ef_search / ef_construction
    max_hnsw_m: int = 256           # an HNSW index's m (links per node)
    max_nlist: int = 65_536         # an IVF index's nlist and nprobe
    max_regions: int = 4096         # build_regions n_regions
    max_shots: int = 1_000_000      # measure_state shots
    max_filter_depth: int = 16      # nesting of $and / $or / $not
    max_filter_terms: int = 256     # conditions in one filter
    max_epochs: int = 100_000       # a job's epochs (time is bounded by the deadline)
    max_train_batch: int = 4096     # a job's batch_size
    max_jobs: int = 64              # jobs pending or running at once (then 429)
    max_job_seconds: float = 6 * 3600.0  # a job's deadline, from its start

    def check(self, name: str, value: int, what: str) -> None:
        bound = getattr(self, name)
        if value > bound:
            raise error("limit_exceeded", f"{what} is {value}, over the server limit {name}={bound}")


NO_LIMITS = Limits(**{name: 2**62 for name in Limits.__dataclass_fields__})
MAX_AXES = 32  # NumPy 1.x's own limit; a deeper tensor shape is refused before NumPy sees it
MAX_DEPTH = 64  # nesting of a document (maps and lists)
SEED_MAX = 2**63 - 1  # FAISS and NumPy both take it


# ---------------------------------------------------------------------------- body format

def is_msgpack(content_type: str) -> bool:
    return content_type in MSGPACK_TYPES


def wants_json(accept: str) -> bool:
    """JSON unless Accept names msgpack: curl's `*/*` (or no Accept at all) reads JSON."""
    return "msgpack" not in accept.lower()


def dumps(obj: Any, binary: bool) -> bytes:
    if binary:
        return bytes(msgpack.packb(obj, use_bin_type=True))
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

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the JSON form (the OpenAPI document is built from these)."""
        return {}

    def fail(self, field: str, why: str) -> QStoreError:
        return error(self.code, f"{field}: {why}")


class Text(Kind):
    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def decode(self, wire: Any, field: str, limits: Limits) -> str:
        if not isinstance(wire, str):
            raise self.fail(field, f"expected a string, got {type(wire).__name__}")
        return wire

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


class Integer(Kind):
    """An integer; `limit` names its Limits bound (413 over it), `least`/`most` fix its range (400)."""

    def __init__(self, code: str = "invalid_argument", limit: str | None = None, least: int | None = None,
                 most: int | None = None):
        self.code = code
        self.limit = limit
        self.least = least
        self.most = most

    def encode(self, value: Any, binary: bool) -> Any:
        # NumPy integers become ints; anything else travels as given for the server to judge.
        return int(value) if isinstance(value, np.integer) else value

    def decode(self, wire: Any, field: str, limits: Limits) -> int:
        if isinstance(wire, bool) or not isinstance(wire, int):
            raise self.fail(field, f"expected an integer, got {type(wire).__name__}")
        if (self.least is not None and wire < self.least) or (self.most is not None and wire > self.most):
            raise self.fail(field, f"expected an integer in {self.least}..{self.most}, got {wire}")
        if self.limit is not None:
            limits.check(self.limit, wire, field)
        return int(wire)

    def schema(self) -> dict[str, Any]:
        bounds = {"minimum": self.least} if self.least is not None else {}
        if self.most is not None:
            bounds["maximum"] = self.most
        return {"type": "integer", **bounds}


class Number(Kind):
    """A finite number (NaN and Inf are refused: msgpack can carry them, and JSON parsers accept them)."""

    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def encode(self, value: Any, binary: bool) -> Any:
        return value.item() if isinstance(value, (np.integer, np.floating)) else value

    def decode(self, wire: Any, field: str, limits: Limits) -> float:
        if isinstance(wire, bool) or not isinstance(wire, (int, float)):
            raise self.fail(field, f"expected a number, got {type(wire).__name__}")
        try:
            value = float(wire)
        except OverflowError:  # a JSON integer beyond float range
            raise self.fail(field, "number out of range") from None
        if not math.isfinite(value):
            raise self.fail(field, "NaN and Inf are not allowed")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "number"}


class Flag(Kind):
    def decode(self, wire: Any, field: str, limits: Limits) -> bool:
        if not isinstance(wire, bool):
            raise self.fail(field, f"expected true or false, got {type(wire).__name__}")
        return wire

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Nullable(Kind):
    def __init__(self, inner: Kind):
        self.inner = inner
        self.code = inner.code

    def encode(self, value: Any, binary: bool) -> Any:
        return None if value is None else self.inner.encode(value, binary)

    def decode(self, wire: Any, field: str, limits: Limits) -> Any:
        return None if wire is None else self.inner.decode(wire, field, limits)

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


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

    def decode(self, wire: Any, field: str, limits: Limits) -> list[Any]:
        if not isinstance(wire, list):
            raise self.fail(field, f"expected a list, got {type(wire).__name__}")
        if self.limit is not None:
            limits.check(self.limit, len(wire), f"length of {field}")
        return [self.item.decode(v, f"{field}[{i}]", limits) for i, v in enumerate(wire)]

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema()}


class Mapping(Kind):
    """A map with string keys, passed through as is (metadata); the engine checks its contents."""

    def __init__(self, code: str = "invalid_argument"):
        self.code = code

    def decode(self, wire: Any, field: str, limits: Limits) -> dict[str, Any]:
        if not isinstance(wire, dict) or not all(isinstance(k, str) for k in wire):
            raise self.fail(field, "expected a map with string keys")
        return wire

    def schema(self) -> dict[str, Any]:
        return {"type": "object"}


class FilterKind(Mapping):
    """A metadata filter (grammar under Filters in PROTOCOL.md), bounded in depth and terms here,
    before anything recurses over it; the engine compiles and checks the grammar."""

    def __init__(self) -> None:
        super().__init__("invalid_filter")

    def decode(self, wire: Any, field: str, limits: Limits) -> dict[str, Any]:
        doc = super().decode(wire, field, limits)
        terms = 0
        stack: list[tuple[dict[str, Any] | list[Any], int]] = [(doc, 1)]
        while stack:
            node, depth = stack.pop()
            limits.check("max_filter_depth", depth, f"nesting of {field}")
            items = node.values() if isinstance(node, dict) else node
            for value in items:
                terms += 1
                if isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
            limits.check("max_filter_terms", terms, f"terms in {field}")
        return doc


class IndexKind(Mapping):
    """An index spec: the engine checks names and types; the sizes that allocate are bounded here."""

    BOUNDS = {"m": "max_hnsw_m", "ef_construction": "max_ef", "ef_search": "max_ef",
              "nlist": "max_nlist", "nprobe": "max_nlist", "train_size": "max_batch"}

    def __init__(self) -> None:
        super().__init__("invalid_index")

    def decode(self, wire: Any, field: str, limits: Limits) -> dict[str, Any]:
        spec = super().decode(wire, field, limits)
        for key, bound in self.BOUNDS.items():
            value = spec.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                limits.check(bound, value, f"{field}.{key}")
        return spec

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"type": {"type": "string", "enum": ["flat", "hnsw", "ivf"]},
                                                 **{k: {"type": "integer"} for k in self.BOUNDS}}}


def _tensor_bytes(data: Any, field: str, code: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):  # JSON cannot carry bytes: base64 there
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise error(code, f"{field}.data: invalid base64") from None
    raise error(code, f"{field}.data: expected bytes")


def check_shape(shape: Any, field: str, code: str) -> list[int]:
    """A shape NumPy can build: at most MAX_AXES non-negative entries whose non-zero product fits
    (a zero-size array still has its other axes checked against the address space)."""
    if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise error(code, f"{field}.shape: expected a list of non-negative integers")
    if len(shape) > MAX_AXES:
        raise error(code, f"{field}.shape: {len(shape)} axes, at most {MAX_AXES}")
    if math.prod(n for n in shape if n) >= 2**48:
        raise error(code, f"{field}.shape: {shape} is too large")
    return shape


def string_array(values: list[Any], shape: Any, field: str, code: str, limits: Limits) -> np.ndarray:
    """A NumPy str array from a list of strings. NumPy stores every string at the longest one's
    width (4 bytes a character), so that size is bounded by max_body_bytes before allocating."""
    if not all(isinstance(v, str) for v in values):
        raise error(code, f"{field}: expected a list of strings")
    width = max((len(v) for v in values), default=1)
    limits.check("max_body_bytes", 4 * width * len(values), f"{field} as a string array (bytes)")
    shape = check_shape(shape, field, code)
    if math.prod(shape) != len(values):
        raise error(code, f"{field}: shape {shape} does not hold {len(values)} strings")
    array: np.ndarray = np.array(values, dtype=str).reshape(shape)
    return array


def decode_tensor(wire: dict[str, Any], field: str, code: str) -> np.ndarray:
    """{"dtype", "shape", "data"} -> a writable array (raw little-endian bytes, C order)."""
    if set(wire) != {"dtype", "shape", "data"}:
        raise error(code, f"{field}: a tensor has exactly the keys dtype, shape, data")
    dtype = DTYPES.get(wire["dtype"]) if isinstance(wire["dtype"], str) else None
    if dtype is None:
        raise error(code, f"{field}.dtype: expected one of {sorted(DTYPES)}")
    shape = check_shape(wire["shape"], field, code)
    data = _tensor_bytes(wire["data"], field, code)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise error(code, f"{field}: shape {shape} of {wire['dtype']} needs {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def encode_tensor(array: np.ndarray, binary: bool) -> dict[str, Any]:
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

    def schema(self) -> dict[str, Any]:
        row = {"type": "array", "items": {"type": "number"}}
        return {"anyOf": [row, {"type": "array", "items": row}]}


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

    def schema(self) -> dict[str, Any]:
        return COMPLEX_SCHEMA


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

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": COMPLEX_SCHEMA}


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
        elif isinstance(wire, list) and all(isinstance(v, str) for v in wire):
            array = string_array(wire, [len(wire)], field, self.code, limits)
        elif isinstance(wire, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in wire):
            try:
                array = np.asarray(wire)
            except OverflowError:
                raise self.fail(field, "integer out of range") from None
            if array.dtype == object:
                raise self.fail(field, "integer out of range")
        else:
            raise self.fail(field, "expected a list of ints, floats or strings, or a tensor")
        if array.ndim != 1:
            raise self.fail(field, f"expected 1-D, got shape {list(array.shape)}")
        return array

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "array", "items": {"type": "number"}},
                          {"type": "array", "items": {"type": "string"}}]}


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
        return self._decode(wire, field, limits, 1)

    def schema(self) -> dict[str, Any]:
        return {"type": "object"} if self.map_only else {}

    def _decode(self, wire: Any, field: str, limits: Limits, depth: int) -> Any:
        if depth > MAX_DEPTH and isinstance(wire, (dict, list)):
            raise error("limit_exceeded", f"{field}: documents nest at most {MAX_DEPTH} deep")
        if isinstance(wire, dict):
            if len(wire) == 1:
                (tag, inner), = wire.items()
                if tag == "$ndarray" and isinstance(inner, dict):
                    if inner.get("dtype") == "str":
                        if set(inner) != {"dtype", "shape", "data"} or not isinstance(inner["data"], list):
                            raise error("invalid_argument", f"{field}: a str array has dtype, shape and data")
                        return string_array(inner["data"], inner["shape"], field, "invalid_argument", limits)
                    return decode_tensor(inner, field, "invalid_argument")
                if tag == "$complex":
                    return Complex("invalid_argument").decode(inner, field, limits)
                if tag == "$bytes" and isinstance(inner, str):
                    return _tensor_bytes(inner, field, "invalid_argument")
            return {k: self._decode(v, f"{field}.{k}", limits, depth + 1) for k, v in wire.items()}
        if isinstance(wire, list):
            return [self._decode(v, field, limits, depth + 1) for v in wire]
        if isinstance(wire, int) and not isinstance(wire, bool) and not -(2**63) <= wire < 2**64:
            raise error("invalid_argument", f"{field}: integer {wire} is outside 64 bits (msgpack's range)")
        if wire is None or isinstance(wire, (bool, int, float, str, bytes)):
            return wire
        raise error("invalid_argument", f"{field}: unsupported value {type(wire).__name__}")


COMPLEX_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"},
                                                 "minItems": 2, "maxItems": 2}]}
VECTOR = Floats()
DOCUMENT = Document()
RECORD_ID = Text("invalid_id")
METADATA = Mapping("invalid_metadata")


class BranchKind(Kind):
    """A branch: {"vector", "context", "amplitude"}; decodes to the (vector, context, amplitude)
    tuple that `superpose` takes, encodes from a `Branch`."""

    code = "invalid_argument"
    fields = {"vector": VECTOR, "context": Nullable(Text()), "amplitude": Complex()}

    def encode(self, value: Any, binary: bool) -> dict[str, Any]:
        if isinstance(value, Branch):
            vector, context, amplitude = value.vector, value.context, value.amplitude
        else:
            vector, context, amplitude = _branch_tuple(value)
        return {"vector": VECTOR.encode(vector, binary), "context": context,
                "amplitude": Complex().encode(amplitude, binary)}

    def decode(self, wire: Any, field: str, limits: Limits) -> tuple[Any, ...]:
        args = decode_fields(wire, self.fields, {"vector"}, field, limits)
        return args["vector"], args.get("context"), args.get("amplitude", 1.0 + 0.0j)

    def to_branch(self, wire: Any, field: str) -> Branch:
        vector, context, amplitude = self.decode(wire, field, NO_LIMITS)
        return Branch(vector=vector, context=context, amplitude=amplitude)

    def schema(self) -> dict[str, Any]:
        return fields_schema(self.fields, {"vector"})


def _branch_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return tuple(value)
    raise error("invalid_argument", "each branch is (vector, context, amplitude)")


BRANCH = BranchKind()


class RecordKind(Kind):
    def encode(self, rec: Record, binary: bool) -> dict[str, Any]:
        return {"id": rec.id, "vector": VECTOR.encode(rec.vector, binary), "metadata": rec.metadata,
                "branches": [BRANCH.encode(b, binary) for b in rec.branches],
                "expires_at": rec.expires_at, "version": rec.version}

    def decode(self, wire: Any, field: str, limits: Limits) -> Record:
        return Record(id=wire["id"], vector=VECTOR.decode(wire["vector"], field, limits),
                      metadata=wire["metadata"],
                      branches=[BRANCH.to_branch(b, field) for b in wire["branches"]],
                      expires_at=wire["expires_at"], version=wire["version"])

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["id", "vector", "metadata", "branches", "expires_at", "version"],
                "properties": {"id": {"type": "string"}, "vector": VECTOR.schema(), "metadata": {"type": "object"},
                               "branches": {"type": "array", "items": BRANCH.schema()},
                               "expires_at": {"type": ["number", "null"]}, "version": {"type": "integer"}}}


RECORD = RecordKind()


class HitKind(Kind):
    def encode(self, hit: Hit, binary: bool) -> dict[str, Any]:
        return {"id": hit.id, "score": float(hit.score), "metadata": hit.metadata}

    def decode(self, wire: Any, field: str, limits: Limits) -> Hit:
        return Hit(id=wire["id"], score=wire["score"], metadata=wire["metadata"])

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["id", "score", "metadata"],
                "properties": {"id": {"type": "string"}, "score": {"type": "number"}, "metadata": {"type": "object"}}}


HITS = ListOf(HitKind())


class PageKind(Kind):
    def encode(self, page: Page, binary: bool) -> dict[str, Any]:
        return {"records": [RECORD.encode(r, binary) for r in page.records], "next_cursor": page.next_cursor}

    def decode(self, wire: Any, field: str, limits: Limits) -> Page:
        return Page(records=[RECORD.decode(r, field, limits) for r in wire["records"]],
                    next_cursor=wire["next_cursor"])

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["records", "next_cursor"],
                "properties": {"records": {"type": "array", "items": RECORD.schema()},
                               "next_cursor": {"type": ["string", "null"]}}}


class MeasurementKind(Kind):
    def encode(self, m: Measurement, binary: bool) -> dict[str, Any]:
        return {"context": m.context, "vector": VECTOR.encode(m.vector, binary), "probability": float(m.probability)}

    def decode(self, wire: Any, field: str, limits: Limits) -> Measurement:
        return Measurement(context=wire["context"], vector=VECTOR.decode(wire["vector"], field, limits),
                           probability=wire["probability"])

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["context", "vector", "probability"],
                "properties": {"context": {"type": ["string", "null"]}, "vector": VECTOR.schema(),
                               "probability": {"type": "number"}}}


class DatasetKind(Kind):
    """(X, y) as {"X": document array, "y": document array}."""

    def encode(self, value: tuple[Any, ...], binary: bool) -> dict[str, Any]:
        X, y = value
        return {"X": DOCUMENT.encode(np.asarray(X), binary), "y": DOCUMENT.encode(np.asarray(y), binary)}

    def decode(self, wire: Any, field: str, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
        return DOCUMENT.decode(wire["X"], field, limits), DOCUMENT.decode(wire["y"], field, limits)

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["X", "y"], "properties": {"X": {}, "y": {}}}


class CountsKind(Kind):
    """Bitstring -> count, with counts as plain ints."""

    def encode(self, counts: dict[str, int], binary: bool) -> dict[str, Any]:
        return {str(k): int(v) for k, v in counts.items()}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": {"type": "integer"}}


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


def fields_schema(fields: dict[str, Kind], required: set[str] | frozenset[str]) -> dict[str, Any]:
    """The JSON Schema of a request map: exactly these fields, the required ones present."""
    return {"type": "object", "properties": {k: kind.schema() for k, kind in fields.items()},
            "required": sorted(required), "additionalProperties": False}


# ---------------------------------------------------------------------------- operations

class Raw(Kind):
    """A reply that is not wrapped in {"result": ...}: the metrics text, the OpenAPI document."""

    def __init__(self, media: str):
        self.media = media

    def schema(self) -> dict[str, Any]:
        return {"type": "string"} if self.media.startswith("text/") else {"type": "object"}


@dataclass(frozen=True)
class Op:
    """One API call on the wire: its route, body fields (and which are required), result kind,
    success status and scope. This table is the single source of the protocol: the server's
    routes and auth, the client's calls and the OpenAPI document are all built from it.

    `scope` is the key scope the call needs: public (no key), read, write or admin (see
    Authentication in PROTOCOL.md); read calls change nothing, so the client retries them on
    transport failures. `federated` calls are also open to keys of the federated scope.
    """

    name: str
    method: str
    path: str  # under PREFIX; {name} and {id} are path parameters
    fields: dict[str, Kind]
    required: frozenset[str]
    result: Kind
    scope: str
    status: int = 200
    federated: bool = False
    query: tuple[str, ...] = ()  # optional query-string parameters

    @property
    def read(self) -> bool:
        return self.scope in ("public", "read")

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

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


def _op(name: str, route: str, fields: dict[str, Kind], required: set[str], result: Kind, scope: str = "read",
        **extra: Any) -> Op:
    method, path = route.split(" ")
    return Op(name, method, path, fields, frozenset(required), result, scope, **extra)


IDS = ListOf(RECORD_ID, "invalid_id", limit="max_batch")
TOP_K = Integer("invalid_top_k", limit="max_top_k")
FILTER = Nullable(FilterKind())
COHERENCE = Nullable(Number("invalid_coherence_time"))
SEED = Nullable(Integer(least=0, most=SEED_MAX))
NAME = Text("invalid_name")


class DescriptorKind(Kind):
    """A collection as {"name", "dim", "metric"} (encodes anything with those attributes)."""

    def encode(self, value: Any, binary: bool) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        return {"name": value.name, "dim": value.dim, "metric": value.metric}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["name", "dim", "metric"],
                "properties": {"name": {"type": "string"}, "dim": {"type": "integer"}, "metric": {"type": "string"}}}


DESCRIPTOR = DescriptorKind()
COL = "/collections/{name}"

OPS: dict[str, Op] = {op.name: op for op in [
    # server
    _op("health", "GET /health", {}, set(), DOCUMENT, "public"),
    _op("openapi", "GET /openapi.json", {}, set(), Raw(JSON), "public"),
    _op("metrics", "GET /metrics", {}, set(), Raw("text/plain; version=0.0.4; charset=utf-8"), "read"),
    # database
    _op("list_collections", "GET /collections", {}, set(), ListOf(Text())),
    _op("create_collection", "POST /collections", {
        "name": NAME, "dim": Integer("invalid_argument", limit="max_dim", least=1),
        "metric": Text("invalid_metric"), "index": Nullable(IndexKind()), "coherence_time": COHERENCE,
        "on_decohere": Text(), "store": Nullable(Text("invalid_store"))}, {"name", "dim"}, DESCRIPTOR, "write",
        status=201),
    _op("collection", f"GET {COL}", {}, set(), DESCRIPTOR),
    _op("drop_collection", f"DELETE {COL}", {}, set(), DOCUMENT, "admin"),
    # collection
    _op("info", f"GET {COL}/info", {}, set(), DOCUMENT),
    _op("count", f"GET {COL}/count", {}, set(), Integer()),
    _op("upsert", f"POST {COL}/upsert", {
        "ids": IDS, "vectors": Floats(limit="max_batch"),
        "metadata": Nullable(ListOf(Nullable(METADATA), "invalid_metadata", limit="max_batch")),
        "coherence_time": COHERENCE}, {"ids", "vectors"}, DOCUMENT, "write"),
    _op("get", f"POST {COL}/get", {"ids": IDS}, {"ids"}, ListOf(Nullable(RECORD))),
    _op("delete", f"POST {COL}/delete", {"ids": IDS}, {"ids"}, DOCUMENT, "write"),
    _op("query", f"POST {COL}/query", {
        "vector": VECTOR, "top_k": TOP_K, "filter": FILTER, "context": Nullable(Text()),
        "tunneling": Nullable(Number("invalid_tunneling")), "seed": SEED,
        "ef": Nullable(Integer(limit="max_ef", least=1)),
        "per_region": Nullable(Integer(limit="max_top_k", least=1))}, {"vector"}, HITS),
    _op("query_batch", f"POST {COL}/query_batch", {"vectors": Floats(limit="max_batch"), "top_k": TOP_K,
                                                   "filter": FILTER}, {"vectors"}, ListOf(HITS)),
    _op("scroll", f"POST {COL}/scroll", {"limit": Integer(limit="max_batch"),
                                         "cursor": Nullable(Text("invalid_cursor")), "filter": FILTER},
        set(), PageKind()),
    _op("superpose", f"POST {COL}/superpose", {
        "id": RECORD_ID, "branches": ListOf(BRANCH, "invalid_amplitudes", limit="max_batch"),
        "metadata": Nullable(METADATA), "coherence_time": COHERENCE}, {"id", "branches"}, DOCUMENT, "write"),
    # collapse=True makes measure a write: the server and the client check that argument
    _op("measure", f"POST {COL}/measure", {"id": RECORD_ID, "context": Nullable(Text()), "collapse": Flag(),
                                           "seed": SEED}, {"id"}, MeasurementKind()),
    _op("entangle", f"POST {COL}/entangle", {"group": Text(), "ids": IDS, "strength": Number("invalid_strength")},
        {"group", "ids"}, DOCUMENT, "write"),
    _op("disentangle", f"POST {COL}/disentangle", {"group": Text(), "ids": Nullable(IDS)}, {"group"}, DOCUMENT,
        "write"),
    _op("update", f"POST {COL}/update", {"id": RECORD_ID, "vector": VECTOR}, {"id", "vector"}, DOCUMENT, "write"),
    _op("correlation", f"POST {COL}/correlation", {"id_a": RECORD_ID, "id_b": RECORD_ID}, {"id_a", "id_b"},
        Number()),
    _op("build_regions", f"POST {COL}/build_regions", {
        "n_regions": Nullable(Integer(limit="max_regions", least=1)), "seed": Integer(least=0, most=2**31 - 1)},
        set(), Integer(), "write"),
    _op("sweep", "POST /sweep", {}, set(), Integer(), "admin"),
    _op("backup", "POST /admin/backup", {"name": NAME}, {"name"}, DOCUMENT, "admin", status=201),
    # quantum states
    _op("put_state", "POST /states/put", {"id": RECORD_ID, "statevector": StateVector()}, {"id", "statevector"},
        DOCUMENT,
        "write"),
    _op("get_state", "POST /states/get", {"id": RECORD_ID}, {"id"}, StateVector()),
    _op("measure_state", "POST /states/measure", {
        "id": RECORD_ID, "shots": Integer(limit="max_shots"),
        "qubits": Nullable(ListOf(Integer(least=0, most=63), limit="max_dim")), "seed": SEED},
        {"id"}, CountsKind()),
    _op("delete_state", "POST /states/delete", {"id": RECORD_ID}, {"id"}, DOCUMENT, "write"),
    # datasets and checkpoints
    _op("import_dataset", "POST /datasets", {"name": NAME, "X": Floats(code="invalid_features"), "y": Labels()},
        {"name", "X", "y"}, DESCRIPTOR, "write", status=201),
    _op("list_datasets", "GET /datasets", {}, set(), ListOf(Text())),
    _op("dataset_info", "GET /datasets/{name}", {}, set(), DOCUMENT),
    _op("load_dataset", "GET /datasets/{name}/data", {}, set(), DatasetKind()),
    _op("save_checkpoint", "POST /checkpoints", {"doc": Document(map_only=True), "id": Nullable(Text())},
        {"doc"}, Text(), "write", status=201),
    _op("list_checkpoints", "GET /checkpoints", {}, set(), ListOf(DOCUMENT), query=("run",)),
    _op("load_checkpoint", "GET /checkpoints/{id}", {}, set(), DOCUMENT),
    _op("delete_checkpoint", "DELETE /checkpoints/{id}", {}, set(), DOCUMENT, "admin"),
    # jobs: a federated key reaches only jobs of the federated kinds (the server checks the kind)
    _op("job_kinds", "GET /jobs/kinds", {}, set(), ListOf(Text()), federated=True),
    _op("start_job", "POST /jobs", {"kind": Text(), "params": Nullable(Document(map_only=True))}, {"kind"},
        DOCUMENT, "write", status=202, federated=True),
    _op("list_jobs", "GET /jobs", {}, set(), ListOf(DOCUMENT)),
    _op("job", "GET /jobs/{id}", {}, set(), DOCUMENT, federated=True),
    _op("job_result", "GET /jobs/{id}/result", {}, set(), DOCUMENT, federated=True),
    _op("cancel_job", "POST /jobs/{id}/cancel", {}, set(), DOCUMENT, "write", federated=True),
    _op("delete_job", "DELETE /jobs/{id}", {}, set(), DOCUMENT, "write", federated=True),
]}

# {name} is a collection or dataset name, {id} a checkpoint or job id, both percent-encoded by
# clients. Record and state ids always travel in bodies (any UTF-8).
ROUTES: dict[str, tuple[str, str]] = {op.name: (op.method, op.path) for op in OPS.values()}
