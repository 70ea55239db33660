"""TensorBoard event files for a training run, written without TensorBoard and byte-for-byte deterministic.

A train step ends with ``events.out.tfevents.physlm`` beside its checkpoints, so ``tensorboard --logdir
$PHYSLM_ROOT/train`` shows every run (one per train step folder): scalars ``train/loss`` (the mean loss since
the previous checkpoint), ``train/lr`` and ``train/tokens_seen`` at each checkpoint's step.

Why not ``torch.utils.tensorboard``: it needs the ``tensorboard`` package, names its file after the clock,
host and pid and stamps every event with the wall clock — a step's files must be a pure function of its
config (a killed-and-resumed run must write the very bytes of an uninterrupted one, tests/test_reliability.py),
and the checkpoints' records (physlm/store/checkpoint.py) are. So the file is encoded here: TFRecord framing
(length, masked CRC-32C of the length, data, masked CRC-32C of the data) around ``Event`` protobufs (wall_time
= 1 double, step = 2 varint, file_version = 3 string, summary = 5 message; ``Summary.Value``: tag = 1 string,
simple_value = 2 float), with the step number as wall time. tests/test_tensorboard.py reads it back with
TensorBoard's own loader.
"""

from __future__ import annotations

import struct

FILENAME = "events.out.tfevents.physlm"


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes_field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, file_version: str | None = None, scalars: dict[str, float] | None = None) -> bytes:
    out = _varint(1 << 3 | 1) + struct.pack("<d", float(step)) + _varint(2 << 3 | 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars:
        values = b"".join(_bytes_field(1, _bytes_field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", v))
                          for tag, v in scalars.items())  # fmt: skip
        out += _bytes_field(5, values)
    return out


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(crc32c(length))) + data + struct.pack("<I", _masked(crc32c(data)))


def events(points: list[tuple[int, dict[str, float]]]) -> bytes:
    """The bytes of an event file: the version header, then one event of scalars per ``(step, {tag: value})``."""
    out = _record(_event(0, file_version="brain.Event:2"))
    for step, scalars in points:
        out += _record(_event(step, scalars=scalars))
    return out


def read(data: bytes) -> list[tuple[int, dict[str, float]]]:
    """``(step, {tag: value})`` of every scalar event of a file written by :func:`events` (checks each CRC)."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        body = data[pos + 12 : pos + 12 + n]
        if struct.unpack_from("<I", data, pos + 12 + n)[0] != _masked(crc32c(body)):
            raise ValueError(f"event file: bad CRC at byte {pos}")
        pos += 16 + n
        step, scalars = _parse_event(body)
        if scalars:
            out.append((step, scalars))
    return out


def _parse_event(body: bytes) -> tuple[int, dict[str, float]]:
    fields = dict(_fields(body))
    scalars = {}
    for _, value in _fields(fields.get(5, b"")):
        v = dict(_fields(value))
        scalars[v[1].decode()] = struct.unpack("<f", v[2])[0]
    return fields.get(2, 0), scalars


def _fields(buf: bytes):
    """``(field number, value)`` pairs of a protobuf message (the wire types used above)."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        yield num, value


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos
