"""Hypothesis strategies for hostile gRPC requests: any proto message from its descriptor, and bytes that are none.

``message(descriptor, words)`` draws well-formed messages whose values are chosen to hurt: names
the daemon knows mixed with empty, huge, control-character and non-ASCII strings; integers at and
beyond every boundary; NaN and infinities; deep and long repeated fields; one field of each oneof.
``garbage(valid)`` draws byte strings that are not the message: random bytes, truncations and bit
flips of valid encodings, wrong wire types, lengths that run past the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

F = FieldDescriptor
_INT_EDGES = [0, 1, -1, 2, 7, 255, 256, 511, 512, 4095, 4096, 65535, 65536, (1 << 20) - 1, 1 << 20, 1 << 24,
              (1 << 31) - 1, -(1 << 31), 1 << 31, 1 << 32, (1 << 32) - 1, 1 << 40, 1 << 53, (1 << 62), (1 << 63) - 1,
              -(1 << 63), (1 << 64) - 1]
_RANGES = {
    F.TYPE_INT32: (-(1 << 31), (1 << 31) - 1), F.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    F.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1), F.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    F.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1), F.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    F.TYPE_UINT32: (0, (1 << 32) - 1), F.TYPE_FIXED32: (0, (1 << 32) - 1),
    F.TYPE_UINT64: (0, (1 << 64) - 1), F.TYPE_FIXED64: (0, (1 << 64) - 1),
}
_HOSTILE_TEXT = ["", " ", "\x00", "\t\n", "a" * 33, "x" * 4096, "../../../etc/passwd", "%s%n%x", "名前ボリューム",
                 "bv001\x00", "bv001 ", " bv001", "-1", "0x10", "0010h", "ffffh", "10000h", "bv001.-1", "bv001.-0",
                 "bv001.-99999999999999999999", ".-1", "ld.relgen", "relgen", "🙂" * 20, "\u202e", "NaN", "1e309",
                 "DROP TABLE lds;--", "'\"", "\\", "a:b:c", "wwn:", "port:"]


def _text(words: Sequence[str]) -> st.SearchStrategy[str]:
    plain = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=48)
    known = st.sampled_from(list(words)) if words else st.nothing()
    return st.one_of(known, known, known, st.sampled_from(_HOSTILE_TEXT), plain)  # mostly names it knows


def _scalar(field: FieldDescriptor, words: Sequence[str]) -> st.SearchStrategy[Any]:
    t = field.type
    if t == F.TYPE_STRING:
        return _text(words)
    if t == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=512), st.sampled_from([b"", b"\x00" * 4096, b"\xff" * 65536]))
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.one_of(st.sampled_from([0.0, -0.0, 0.001, 1.0, -1.0, 1e9, 1e308, 5e-324, float("inf"),
                                          float("-inf"), float("nan")]),
                         st.floats(allow_nan=True, allow_infinity=True, width=64 if t == F.TYPE_DOUBLE else 32))
    if t == F.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    lo, hi = _RANGES[t]
    small = st.integers(max(lo, -2), min(hi, 64))  # counts, numbers, directors: mostly plausible
    return st.one_of(small, small, st.sampled_from([v for v in _INT_EDGES if lo <= v <= hi]), st.integers(lo, hi))


def message(descriptor: Descriptor, words: Sequence[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor``'s type, each field present or not, values hostile."""
    cls = _message_class(descriptor)
    text = _text(words)

    def value(field: FieldDescriptor) -> st.SearchStrategy[Any]:
        if field.type == F.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                return st.dictionaries(text, text, max_size=3)
            inner = (message(field.message_type, words, depth + 1) if depth < 3
                     else st.just(_message_class(field.message_type)()))
        else:
            inner = _scalar(field, words)
        return st.lists(inner, max_size=4 if depth else 6) if field.is_repeated else inner

    # Built once per message type and depth: strategies made while drawing would be rebuilt every draw.
    plain = [(f.name, value(f)) for f in descriptor.fields
             if f.containing_oneof is None or f.containing_oneof.name.startswith("_")]  # "_x": proto3 optional
    oneofs = [st.sampled_from([None, *((f.name, value(f)) for f in o.fields)])
              for o in descriptor.oneofs if not o.name.startswith("_")]
    present = st.integers(0, 3)  # each field is present three times in four

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kwargs: dict[str, Any] = {}
        for name, strategy in plain:
            if draw(present):
                kwargs[name] = draw(strategy)
        for choice in oneofs:
            chosen = draw(choice)
            if chosen is not None:
                kwargs[chosen[0]] = draw(chosen[1])
        return cls(**kwargs)

    return build()


def garbage(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Byte strings that are not (or not wholly) a valid encoding of ``valid``'s messages."""

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(valid).SerializeToString())
        how = draw(st.sampled_from(["truncate", "flip", "insert", "length"]))
        if how == "truncate" and data:
            return bytes(data[: draw(st.integers(0, len(data) - 1))])
        if how == "flip" and data:
            for _ in range(draw(st.integers(1, 4))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
            return bytes(data)
        if how == "insert":
            i = draw(st.integers(0, len(data)))
            return bytes(data[:i]) + draw(st.binary(min_size=1, max_size=16)) + bytes(data[i:])
        return b"\x0a\xff\xff\xff\xff\x0f" + bytes(data)  # field 1, length-delimited, 4 GiB long

    fixed = st.sampled_from([b"\xff" * 64, b"\x08" * 10, b"\x0f", b"\x80" * 11, b"\x0b\x0c", b"\x12\x05ab",
                             b"\x1a\x80\x80\x80\x80\x10", b"\x00", b"\xfa\xff\xff\xff\x0f\x00"])
    return st.one_of(st.binary(min_size=1, max_size=256), fixed, mutated())


def _message_class(descriptor: Descriptor) -> type:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)
