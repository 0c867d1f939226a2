"""A fast, optional front end to :mod:`reader` for well-formed COCO files, built on msgspec.

Profiling the merge of large CVAT exports showed most time going into the stdlib scanner building a Python
object for every number of every polygon, only for the merge to keep four integers per annotation and later
re-emit the original text. msgspec can skip a value while checking its syntax (``msgspec.Raw``: the
element's exact bytes, no objects) and decode only named fields of an object (a ``Struct``): on a 27 MB
CVAT export, ~0.02 s to split the annotations array and ~0.05 s for their four fields, against ~0.6-0.75 s
for ``json.loads`` and ~0.4-0.65 s for orjson, which must build every object too.

The fast path never decides anything on its own: it only accepts input on which it provably agrees with the
stdlib path, and answers ``None`` for everything else (malformed or non-UTF-8 text, ``NaN``, lone surrogate
escapes, numbers out of float range, deep nesting, repeated top-level keys, msgspec missing), which sends
the caller to the stdlib path; that path then produces exactly the results and errors it always did.
"""

from __future__ import annotations

import re
import sys
from typing import Any

try:
    import msgspec
except ImportError:  # optional: the stdlib path does everything, only slower
    msgspec = None  # type: ignore[assignment]

BOM = b"\xef\xbb\xbf"
_ws = re.compile(rb"[ \t\n\r]*").match
_key = re.compile(rb'"(?:[^"\\]|\\.)*"').match
#: Deeper input goes to the stdlib path, whose own recursion limit decides whether it is "nested too deeply".
_MAX_DEPTH = 200

if msgspec is not None:

    class Ann(msgspec.Struct):
        """The fields of an annotation that pass 1 reads; ``bbox`` is UNSET when the key is absent."""

        id: Any = None
        image_id: Any = None
        category_id: Any = None
        bbox: Any = msgspec.UNSET

    UNSET = msgspec.UNSET
    _top = msgspec.json.Decoder(dict[str, msgspec.Raw])
    _raws = msgspec.json.Decoder(list[msgspec.Raw])
    _anns = msgspec.json.Decoder(list[Ann])
    _any = msgspec.json.Decoder()
    _Error: tuple = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError)
else:  # pragma: no cover - exercised by the fallback test through a monkeypatched flag
    UNSET = object()
    _Error = ()

#: Set to False to force the stdlib path (tests compare the two paths' output bytes).
enabled = msgspec is not None


class Parsed:
    """A COCO file read on the fast path.

    Attributes:
        members: top-level members in file order, each ``(key, value)``; the ``annotations`` array's value
            is None (see ``annotations``), every other member's value is decoded (images, categories) or
            None (members the merge ignores).
        annotations: the annotations array's elements as raw bytes spans (``msgspec.Raw``), or None when there
            is no array; :func:`fields` reads a batch of them.
        span: ``(start, end)`` of the annotations array in the file's bytes (BOM included), for pass 2.
    """

    __slots__ = ("members", "annotations", "span")

    def __init__(self) -> None:
        self.members: list[tuple[str, Any]] = []
        self.annotations: list | None = None
        self.span = (0, 0)


def parse(data: bytes, decode_any: frozenset[str] = frozenset({"images", "categories"})) -> Parsed | None:
    """Read a COCO file's bytes, or None when the stdlib path must read it (see the module docstring).

    The caller must already have checked that ``data`` is UTF-8 (``bytes.isascii`` or a decode): msgspec
    skips over string contents without validating their encoding.
    """
    if not enabled:
        return None
    with _depth_limit():
        try:
            return _parse(data, decode_any)
        except _Error:
            return None


def fields(elements: list) -> list | None:
    """The ``id``, ``image_id``, ``category_id`` and ``bbox`` (:class:`Ann`) of raw annotation elements, or
    None when one is not an object or holds a number out of float range (the caller then decodes them with
    the stdlib). Batches keep the objects few: a whole file's would double the merge's peak memory."""
    with _depth_limit():
        try:
            return _anns.decode(b"[" + b",".join(elements) + b"]")
        except _Error:
            return None


def annotation_elements(data: bytes, span: tuple[int, int]) -> list | None:
    """The raw elements of the annotations array at ``span`` (as :func:`parse` found it), or None if they
    no longer parse (the caller has already compared the file's digest, so this does not happen)."""
    with _depth_limit():
        try:
            return _raws.decode(memoryview(data)[span[0]:span[1]])
        except _Error:
            return None


def _parse(data: bytes, decode_any: frozenset[str]) -> Parsed | None:
    offset = len(BOM) if data.startswith(BOM) else 0
    view = memoryview(data)[offset:]
    top = _top.decode(view)
    out = Parsed()
    # A dict keeps one value per key; walk the text to prove each key occurs once and to find the
    # annotations array's position. Each step compares the member's bytes with what msgspec returned.
    i = _ws(data, offset).end()
    if data[i:i + 1] != b"{":
        return None
    i = _ws(data, i + 1).end()
    items = iter(top.items())
    seen = 0
    if data[i:i + 1] == b"}":
        i += 1
    else:
        while True:
            m = _key(data, i)
            if m is None:
                return None
            try:
                key, raw = next(items)
            except StopIteration:  # more members than keys: a key is repeated
                return None
            if _any.decode(m.group()) != key:
                return None
            seen += 1
            i = _ws(data, m.end()).end()
            if data[i:i + 1] != b":":
                return None
            i = _ws(data, i + 1).end()
            n = len(raw)
            if not data.startswith(raw, i):
                return None
            if key == "annotations" and data[i:i + 1] == b"[":
                out.span = (i, i + n)
                out.annotations = _raws.decode(raw)
                out.members.append((key, None))
            elif key in decode_any:
                out.members.append((key, _any.decode(raw)))
            else:
                out.members.append((key, None))
            i = _ws(data, i + n).end()
            c = data[i:i + 1]
            if c == b",":
                i = _ws(data, i + 1).end()
                continue
            if c == b"}":
                i += 1
                break
            return None
    if seen != len(top) or _ws(data, i).end() != len(data):
        return None
    return out


class _depth_limit:
    """Lower the recursion limit while msgspec decodes, so that anything nested deeper than the stdlib path
    could possibly read raises RecursionError here and goes to that path to be judged."""

    def __enter__(self) -> None:
        self.old = sys.getrecursionlimit()
        depth, frame = 0, sys._getframe()
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        sys.setrecursionlimit(min(self.old, depth + _MAX_DEPTH))

    def __exit__(self, *exc: object) -> None:
        sys.setrecursionlimit(self.old)
