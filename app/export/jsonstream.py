"""Large JSON arrays, written and read one element at a time, so memory does not grow with the array.

`write_json_array` writes to a temporary file beside the target and renames it at the end: an interrupted export
never leaves a truncated file under the final name. `iter_json_array` reads a file holding one JSON array and yields
its elements as they are decoded, without loading the whole file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from app.errors import AppError

# orjson encodes several times faster than the standard library, which is what keeps a 100,000-item export fast.


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


_READ_CHUNK = 1 << 16
_WHITESPACE = " \t\r\n"
# The most one element may take. A task with an inline image is the largest kind: a 50-megapixel JPEG is about
# 25 MB, 34 MB as base64.
MAX_ELEMENT_CHARS = 64 * 1024 * 1024
# The structural characters of JSON, for stepping over an element that is too deeply nested to decode.
_STRUCTURE = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


@contextmanager
def atomic_output(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file handle whose content appears at `path` only if the block finishes without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json_items(handle: IO[str], items: Iterable[Any]) -> int:
    """Write `items` as the elements of a JSON array (brackets included); returns how many were written."""
    count = 0
    handle.write("[")
    for item in items:
        handle.write(",\n" if count else "\n")
        handle.write(dumps(item))
        count += 1
    handle.write("\n]\n" if count else "]\n")
    return count


def write_json_array(path: Path, items: Iterable[Any]) -> int:
    """Write `items` to `path` as one JSON array, atomically; returns how many were written."""
    with atomic_output(path) as handle:
        return write_json_items(handle, items)


class JsonArrayError(AppError, ValueError):
    """The file is not one JSON array; the message says where it went wrong."""


@dataclass(frozen=True)
class SkippedElement:
    """An element that is well delimited but cannot be decoded (nested too deeply); yielded in its place."""

    index: int
    reason: str


class _Reader:
    """A window on the text: `text[position:]` is what is not consumed yet. It grows by whole chunks, collected and
    joined once, so reading a large element costs time in proportion to its size."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.text = ""
        self.position = 0
        self.eof = False

    @property
    def available(self) -> int:
        return len(self.text) - self.position

    def grow(self, at_least: int) -> bool:
        """Read until `at_least` characters are available (or the end); False when nothing more could be read."""
        chunks: list[str] = []
        gained = 0
        while not self.eof and self.available + gained < at_least:
            chunk = self.handle.read(_READ_CHUNK)
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            gained += len(chunk)
        if not chunks:
            return False
        self.text = self.text[self.position :] + "".join(chunks)
        self.position = 0
        return True

    def peek(self) -> str | None:
        """The next character that is not whitespace, or None at the end."""
        while True:
            while self.position < len(self.text) and self.text[self.position] in _WHITESPACE:
                self.position += 1
            if self.position < len(self.text):
                return self.text[self.position]
            if not self.grow(1):
                return None


def _element_end(text: str, start: int) -> int | None:
    """Where the array or object starting at `start` ends (one past its closing bracket), or None if `text` ends
    first. Only brackets and strings are looked at; the decoder has already found the element's syntax valid up to
    the depth it could reach."""
    depth = 0
    position = start
    while True:
        found = _STRUCTURE.search(text, position)
        if found is None:
            return None
        char = found.group()
        position = found.end()
        if char == '"':
            rest = _STRING_REST.match(text, position)
            if rest is None:
                return None
            position = rest.end()
        elif char in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return position


def _too_large(index: int, max_chars: int) -> JsonArrayError:
    return JsonArrayError(
        f"element {index} is larger than {max_chars:,} characters, the most one element may take "
        "(or its JSON is not valid)"
    )


def iter_json_array(handle: IO[str], *, max_element_chars: int = MAX_ELEMENT_CHARS) -> Iterator[Any]:
    """Yield the elements of the JSON array in `handle` one by one.

    An element nested too deeply to decode is yielded as a `SkippedElement`, and reading goes on after it.

    Raises:
        JsonArrayError: the text is not a JSON array, or an element is longer than `max_element_chars` (the
            elements read before the error have been yielded).
    """
    decoder = json.JSONDecoder()
    reader = _Reader(handle)
    if reader.peek() != "[":
        raise JsonArrayError("expected a JSON array of tasks (the file should start with '[')")
    reader.position += 1
    if reader.peek() == "]":
        return
    index = 0
    while True:
        if reader.peek() is None:
            raise JsonArrayError(f"the array ends early, after {index} elements")
        element = _next_element(reader, decoder, index, max_element_chars)
        yield element
        index += 1
        separator = reader.peek()
        if separator == "]":
            return
        if separator is None:
            raise JsonArrayError(f"the array ends early, after {index} elements (no closing ']')")
        if separator != ",":
            raise JsonArrayError(f"expected ',' or ']' after element {index - 1}")
        reader.position += 1


def _next_element(reader: _Reader, decoder: json.JSONDecoder, index: int, max_chars: int) -> Any:
    """Decode the element at the reader's position and consume it."""
    while True:
        try:
            element, end = decoder.raw_decode(reader.text, reader.position)
        except json.JSONDecodeError as error:
            # The element may continue beyond what has been read; only the whole file makes the error real. The
            # window at least doubles before the next try, so a large element is decoded a few times, not once
            # per chunk.
            if reader.available > max_chars:
                raise _too_large(index, max_chars) from None
            if reader.grow(max(2 * reader.available, reader.available + _READ_CHUNK)):
                continue
            raise JsonArrayError(f"element {index} is not valid JSON: {error.msg}") from None
        except RecursionError:
            return _skip_deep_element(reader, index, max_chars)
        if end == len(reader.text) and isinstance(element, int | float) and reader.grow(reader.available + 1):
            continue  # a number cut at the end of what was read decodes as a shorter number; read on to be sure
        if end - reader.position > max_chars:
            raise _too_large(index, max_chars)
        reader.position = end
        return element


def _skip_deep_element(reader: _Reader, index: int, max_chars: int) -> SkippedElement:
    while True:
        end = _element_end(reader.text, reader.position)
        if end is not None:
            reader.position = end
            return SkippedElement(index, "nested too deeply to read")
        if reader.available > max_chars:
            raise _too_large(index, max_chars)
        if not reader.grow(max(2 * reader.available, reader.available + _READ_CHUNK)):
            raise JsonArrayError(f"element {index} is not valid JSON: it is cut off")
