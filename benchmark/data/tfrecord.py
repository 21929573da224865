"""TFRecord files and `tf.train.Example` protos, read without TensorFlow.

Framing of one record (little-endian):

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

with masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2**32 (CRC-32C, Castagnoli).
Both CRCs are checked; a mismatch raises `RecordError` (a SampleError) naming the file and the
byte offset of the record. CRC-32C comes from `google-crc32c`: its C implementation measured
5.4 GB/s here against 11 MB/s for a table-driven pure-Python loop, which would make checking an
Open X-Embodiment shard (100+ MB) take seconds.

`parse_example` decodes the protobuf wire format of `tf.train.Example` by hand:
Example{1: Features}, Features{1: map<string, Feature>}, Feature oneof {1: BytesList,
2: FloatList, 3: Int64List}, each list `repeated ... value = 1`, packed or not.

`parse_features` reads a TFDS `features.json` into flat feature specs, and `step_tensor` turns the
flattened per-step values of a tensor feature back into an (n_steps, *shape) array.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import google_crc32c
import numpy as np

from ..core.errors import SampleError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")


def masked_crc32c(data: bytes | memoryview) -> int:
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class RecordError(SampleError):
    """A record of a TFRecord file cannot be read: names the file and the record's byte offset."""

    def __init__(self, path: Path, offset: int, problem: str, framing_lost: bool = False):
        self.path, self.offset, self.framing_lost = Path(path), offset, framing_lost
        super().__init__(f"TFRecord {path}: record at byte offset {offset}: {problem}")


@dataclass
class Record:
    index: int      # position of the record in its file (0-based)
    offset: int     # byte offset of its header
    data: bytes | None  # None when skipped (not wanted) or when its data CRC did not match
    error: RecordError | None = None


def iter_frames(path: Path, want: Callable[[int], bool] | None = None, verify: bool = True) -> Iterator[Record]:
    """Every record of `path` in order. Records for which `want(index)` is false are skipped with
    a seek (data not read, not checked). A data CRC mismatch is reported in `Record.error` and the
    walk goes on (the framing is intact); a bad length CRC or a truncated file raises RecordError,
    because the position of the next record is then unknown."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError as exc:
        raise SampleError(f"missing TFRecord file {path}") from exc
    with handle:
        offset, index = 0, 0
        while True:
            header = handle.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise RecordError(path, offset, f"truncated header ({len(header)} of 12 bytes)", True)
            length, length_crc = _HEADER.unpack(header)
            if verify and masked_crc32c(header[:8]) != length_crc:
                raise RecordError(path, offset, f"length CRC mismatch (stored {length_crc:#010x}, "
                                  f"computed {masked_crc32c(header[:8]):#010x}): the file is corrupt", True)
            if want is not None and not want(index):
                handle.seek(length + 4, 1)
                yield Record(index, offset, None)
            else:
                data = handle.read(length)
                footer = handle.read(4)
                if len(data) < length or len(footer) < 4:
                    raise RecordError(path, offset, f"truncated record (length {length}, file ends early)", True)
                (data_crc,) = struct.unpack("<I", footer)
                if verify and masked_crc32c(data) != data_crc:
                    error = RecordError(path, offset, f"data CRC mismatch (stored {data_crc:#010x}, "
                                        f"computed {masked_crc32c(data):#010x}): the record is corrupt")
                    yield Record(index, offset, None, error)
                else:
                    yield Record(index, offset, data)
            offset += _HEADER.size + length + 4
            index += 1


def read_record(path: Path, offset: int, verify: bool = True) -> bytes:
    """The data of the record whose header starts at `offset`, both CRCs checked."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise RecordError(path, offset, "no record header at this offset (file shorter than expected)")
            length, length_crc = _HEADER.unpack(header)
            if verify and masked_crc32c(header[:8]) != length_crc:
                raise RecordError(path, offset, "length CRC mismatch: the file changed or is corrupt")
            data = handle.read(length)
            footer = handle.read(4)
    except FileNotFoundError as exc:
        raise SampleError(f"missing TFRecord file {path}") from exc
    if len(data) < length or len(footer) < 4:
        raise RecordError(path, offset, f"truncated record (length {length})")
    if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
        raise RecordError(path, offset, "data CRC mismatch: the record is corrupt")
    return data


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing (what TFRecordWriter writes)."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


# --- protobuf wire format -------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of one message; length-delimited values are (start, end)
    slices into `buf` so that nested messages are not copied."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = (pos, pos + length), pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {field})")
        if pos > end:
            raise ValueError("field runs past the end of its message")
        yield field, wire, value


def decode_varints(data: bytes) -> np.ndarray:
    """Packed varints -> int64 array (two's complement for negatives), vectorised with numpy:
    a language_table episode packs ~20k code points, a Python loop would take ~10 ms."""
    b = np.frombuffer(data, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    if b[-1] & 0x80:
        raise ValueError("truncated packed varint")
    if not (b & 0x80).any():
        return b.astype(np.int64)
    ends = np.flatnonzero(b < 0x80)
    starts = np.concatenate([[0], ends[:-1] + 1])
    group = np.repeat(np.arange(len(starts)), ends - starts + 1)
    pos = np.arange(b.size) - starts[group]
    if pos.max() > 9:
        raise ValueError("varint longer than 10 bytes")
    parts = (b & 0x7F).astype(np.uint64) << (7 * pos).astype(np.uint64)
    return np.add.reduceat(parts, starts).view(np.int64)


def _list_values(buf: bytes, start: int, end: int, kind: int) -> list[bytes] | np.ndarray:
    if kind == 1:  # BytesList
        return [buf[s:e] for f, w, (s, e) in _fields(buf, start, end) if f == 1 and w == 2]
    chunks: list[np.ndarray] = []
    for field, wire, value in _fields(buf, start, end):
        if field != 1:
            continue
        if kind == 2:  # FloatList: packed (wire 2) or one fixed32 per value (wire 5)
            raw = buf[value[0]:value[1]] if wire == 2 else value
            chunks.append(np.frombuffer(raw, dtype="<f4"))
        elif wire == 2:  # Int64List packed
            chunks.append(decode_varints(buf[value[0]:value[1]]))
        else:
            chunks.append(np.array([value], dtype=np.uint64).view(np.int64))
    dtype = np.float32 if kind == 2 else np.int64
    return np.concatenate(chunks).astype(dtype, copy=False) if chunks else np.zeros(0, dtype=dtype)


def _feature(buf: bytes, start: int, end: int) -> list[bytes] | np.ndarray:
    value: list[bytes] | np.ndarray = []
    for field, wire, span in _fields(buf, start, end):
        if wire == 2 and field in (1, 2, 3):
            value = _list_values(buf, span[0], span[1], field)  # oneof: the last one set wins
    return value


def parse_example(data: bytes, keys: set[str] | None = None) -> dict[str, list[bytes] | np.ndarray]:
    """A serialized tf.train.Example -> {feature key: values}. Only `keys` are decoded when given
    (the others are skipped without copying). An empty Feature decodes to []."""
    buf = bytes(data)
    out: dict[str, list[bytes] | np.ndarray] = {}
    try:
        for field, wire, span in _fields(buf):
            if field != 1 or wire != 2:
                continue
            for entry_field, entry_wire, entry in _fields(buf, *span):
                if entry_field != 1 or entry_wire != 2:
                    continue
                key, value_span = None, None
                for f, w, v in _fields(buf, *entry):
                    if f == 1 and w == 2:
                        key = buf[v[0]:v[1]].decode("utf-8")
                    elif f == 2 and w == 2:
                        value_span = v
                if key is None or (keys is not None and key not in keys):
                    continue
                out[key] = _feature(buf, *value_span) if value_span else []
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ValueError(f"not a valid tf.train.Example: {exc}") from exc
    return out


# --- TFDS feature specs (features.json) ------------------------------------------------------

@dataclass(frozen=True)
class FeatureSpec:
    key: str              # flat key in the Example, e.g. "steps/observation/image"
    kind: str             # image | text | tensor | unsupported
    shape: tuple[int, ...] = ()
    dtype: str = ""
    encoding: str = "none"  # tensors: none | bytes | zlib
    in_steps: bool = False


def parse_features(node: dict, prefix: str = "", in_steps: bool = False) -> dict[str, FeatureSpec]:
    """features.json (a serialized TFDS FeaturesDict) -> {flat key: FeatureSpec}. The kind is taken
    from which field is present, so files without pythonClassName work too."""
    out: dict[str, FeatureSpec] = {}
    key = prefix.rstrip("/")
    if "featuresDict" in node:
        for name, sub in node["featuresDict"].get("features", {}).items():
            out.update(parse_features(sub, f"{prefix}{name}/", in_steps))
    elif "sequence" in node:
        if in_steps:  # a ragged sequence inside steps: flattened with row lengths, not supported
            return {key: FeatureSpec(key, "unsupported", in_steps=True)}
        out.update(parse_features(node["sequence"].get("feature", {}), prefix, True))
    elif "image" in node:
        info = node["image"]
        out[key] = FeatureSpec(key, "image", _shape(info), info.get("dtype", "uint8"), in_steps=in_steps)
    elif "text" in node:
        out[key] = FeatureSpec(key, "text", (), "string", in_steps=in_steps)
    elif "tensor" in node or "classLabel" in node:
        info = node.get("tensor", {"dtype": "int64"})
        out[key] = FeatureSpec(key, "tensor", _shape(info), info.get("dtype", "float32"),
                               str(info.get("encoding", "none")).lower(), in_steps)
    else:
        out[key] = FeatureSpec(key, "unsupported", in_steps=in_steps)
    return out


def _shape(info: dict) -> tuple[int, ...]:
    return tuple(int(d) for d in (info.get("shape") or {}).get("dimensions", []))


def step_tensor(values: Any, spec: FeatureSpec, n: int) -> np.ndarray:
    """A per-step tensor feature -> array (n, *shape) in the feature's dtype."""
    dtype = np.dtype("bool" if spec.dtype == "bool" else spec.dtype)
    if spec.encoding in ("bytes", "zlib"):
        try:
            raw = [zlib.decompress(b) if spec.encoding == "zlib" else b for b in values]
        except zlib.error as exc:
            raise SampleError(f"feature {spec.key}: corrupt zlib data: {exc}") from exc
        arr = np.stack([np.frombuffer(b, dtype=dtype).reshape(spec.shape) for b in raw]) if raw else \
            np.zeros((0, *spec.shape), dtype)
    else:
        flat = np.asarray(values)
        per = int(np.prod(spec.shape)) if spec.shape else 1
        if flat.size != n * per:
            raise SampleError(f"feature {spec.key}: {flat.size} values for {n} steps of shape {spec.shape}")
        arr = flat.reshape((n, *spec.shape)).astype(dtype)
    if len(arr) != n:
        raise SampleError(f"feature {spec.key}: {len(arr)} steps, the images have {n}")
    return arr
