"""Large JSON arrays, written and read one element at a time, so memory does not grow with the array.

`write_json_array` writes to a temporary file beside the target and renames it at the end: an interrupted export
never leaves a truncated file under the final name. `iter_json_array` reads a file holding one JSON array and yields
its elements as they are decoded, without loading the whole file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

# orjson encodes several times faster than the standard library, which is what keeps a 100,000-item export fast.


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


_READ_CHUNK = 1 << 16
_WHITESPACE = " \t\r\n"


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


class JsonArrayError(ValueError):
    """The file is not one JSON array; the message says where it went wrong."""


def iter_json_array(handle: IO[str]) -> Iterator[Any]:
    """Yield the elements of the JSON array in `handle` one by one.

    Raises:
        JsonArrayError: the text is not a JSON array (the elements read before the error have been yielded).
    """
    decoder = json.JSONDecoder()
    buffer = ""
    position = 0
    eof = False

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = handle.read(_READ_CHUNK)
        if not chunk:
            eof = True
            return False
        buffer = buffer[position:] + chunk
        position = 0
        return True

    def skip_whitespace() -> str | None:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in _WHITESPACE:
                position += 1
            if position < len(buffer):
                return buffer[position]
            if eof or not fill():
                return None

    first = skip_whitespace()
    if first != "[":
        raise JsonArrayError("expected a JSON array of tasks (the file should start with '[')")
    position += 1
    if skip_whitespace() == "]":
        return
    index = 0
    while True:
        if skip_whitespace() is None:
            raise JsonArrayError(f"the array ends early, after {index} elements")
        while True:
            try:
                element, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as error:
                # The element may continue in the next chunk; only a complete buffer makes the error real.
                if not eof and fill():
                    continue
                raise JsonArrayError(f"element {index} is not valid JSON: {error.msg}") from None
            if end == len(buffer) and not eof and isinstance(element, int | float):
                # A number cut at the chunk boundary decodes as a shorter number; read on to be sure.
                if fill():
                    continue
            break
        position = end
        yield element
        index += 1
        separator = skip_whitespace()
        if separator == "]":
            return
        if separator is None:
            raise JsonArrayError(f"the array ends early, after {index} elements (no closing ']')")
        if separator != ",":
            raise JsonArrayError(f"expected ',' or ']' after element {index - 1}")
        position += 1
