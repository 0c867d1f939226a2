"""Stream a COCO JSON text: top-level members whole, annotations one element at a time.

Merging large exports must not hold every annotation as Python objects (about five times the JSON size), so
the annotations array is walked with the stdlib's C scanner, one element per call, and each element's text
span is reported so the merge can re-emit the original text instead of re-serialising it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from rfdetr_trainer.coco.io import malformed
from rfdetr_trainer.errors import DatasetError

_scan = json.JSONDecoder().scan_once
_ws = re.compile(r"[ \t\n\r]*").match
_WS = " \t\n\r"

OnMember = Callable[[str, Any], None]
#: Called with a batch of annotations: (elements, starts, ends); batches cut the per-call overhead.
OnAnnotations = Callable[[list, list, list], None]
BATCH = 4096


def walk_coco(text: str, name: str, on_member: OnMember, annotation_handler: Callable[[], OnAnnotations]) -> None:
    """Walk a COCO JSON object.

    Calls ``on_member(key, value)`` for each top-level member except ``annotations``; for that array, asks
    ``annotation_handler()`` for a callback (so the caller can decide once, knowing which members came
    before) and calls it as ``callback(elements, starts, ends)`` per batch of up to :data:`BATCH` elements,
    ``text[starts[k]:ends[k]]`` being element k's source text.

    Raises:
        DatasetError: the text is not a JSON object; the message names ``name``, line and column.
    """
    try:
        _walk(text, on_member, annotation_handler)
    except json.JSONDecodeError as exc:
        raise malformed(name, exc) from None
    except StopIteration as stop:  # the C scanner's way of saying "no value here"
        raise malformed(name, json.JSONDecodeError("Expecting value", text, stop.value)) from None
    except IndexError:
        raise malformed(name, json.JSONDecodeError("Unexpected end of file", text, len(text))) from None
    except RecursionError:
        raise DatasetError(f"{name}: JSON nested too deeply") from None


def _expect(text: str, i: int, char: str, what: str) -> int:
    i = _ws(text, i).end()
    if i >= len(text) or text[i] != char:
        raise json.JSONDecodeError(f"Expecting {what}", text, i)
    return _ws(text, i + 1).end()


def _walk(text: str, on_member: OnMember, annotation_handler: Callable[[], OnAnnotations]) -> None:
    n = len(text)
    scan = _scan
    i = _expect(text, 0, "{", "'{' (a COCO file is a JSON object)")
    if text[i] == "}":
        i += 1
    else:
        while True:
            if text[i] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = scan(text, i)
            i = _expect(text, i, ":", "':' delimiter")
            if key == "annotations" and text[i] == "[":
                i = _ws(text, i + 1).end()
                if text[i] == "]":
                    i += 1
                else:
                    take = annotation_handler()
                    values: list = []
                    starts: list = []
                    ends: list = []
                    while True:
                        starts.append(i)
                        value, i = scan(text, i)
                        values.append(value)
                        ends.append(i)
                        if len(values) == BATCH:
                            take(values, starts, ends)
                            values, starts, ends = [], [], []
                        c = text[i]
                        if c in _WS:
                            i = _ws(text, i).end()
                            c = text[i]
                        if c == ",":
                            i += 1
                            if text[i] in _WS:
                                i = _ws(text, i).end()
                            continue
                        if c == "]":
                            i += 1
                            break
                        raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
                    if values:
                        take(values, starts, ends)
            else:
                value, i = scan(text, i)
                on_member(key, value)
            i = _ws(text, i).end()
            if text[i] == ",":
                i = _ws(text, i + 1).end()
                continue
            if text[i] == "}":
                i += 1
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
    i = _ws(text, i).end()
    if i != n:
        raise json.JSONDecodeError("Extra data", text, i)
