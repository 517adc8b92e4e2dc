"""Streaming JSON arrays: written atomically, read element by element across chunk boundaries."""

from __future__ import annotations

import io
import json

import pytest

from app.export import jsonstream
from app.export.jsonstream import JsonArrayError, iter_json_array, write_json_array


def test_written_array_reads_back_with_json_and_with_the_stream(tmp_path):
    items = [{"id": i, "text": 'é\n"<x>"' * (i % 3), "n": i / 7} for i in range(50)]
    path = tmp_path / "out.json"
    assert write_json_array(path, iter(items)) == 50
    assert json.loads(path.read_text()) == items
    with path.open() as handle:
        assert list(iter_json_array(handle)) == items


def test_empty_array_round_trips(tmp_path):
    path = tmp_path / "empty.json"
    assert write_json_array(path, []) == 0
    assert json.loads(path.read_text()) == []
    assert list(iter_json_array(path.open())) == []


def test_elements_split_across_read_chunks_are_decoded_whole(monkeypatch):
    monkeypatch.setattr(jsonstream, "_READ_CHUNK", 7)  # cut every element, number and string somewhere
    items = [12345678901234, {"a": [1, 2, {"b": "x" * 30}]}, "tail", 3.25, None, True]
    text = " [ " + " , ".join(json.dumps(item) for item in items) + " ] \n"
    assert list(iter_json_array(io.StringIO(text))) == items


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.json"

    def items():
        yield {"ok": 1}
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        write_json_array(path, items())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message", "read"),
    [
        ('{"data": {}}', "expected a JSON array", 0),  # one task, not a list of tasks
        ("[1, 2", "ends early", 2),
        ("[1, 2 3]", "expected ',' or ']' after element 1", 2),
        ('[{"a": 1}, {"a": ]', "element 1 is not valid JSON", 1),
    ],
)
def test_malformed_arrays_raise_after_yielding_what_was_valid(text, message, read):
    elements = []
    with pytest.raises(JsonArrayError, match=message):
        for element in iter_json_array(io.StringIO(text)):
            elements.append(element)
    assert len(elements) == read


class CountingDecoder(json.JSONDecoder):
    """The standard decoder, counting its attempts."""

    attempts = 0

    def raw_decode(self, s, idx=0):
        CountingDecoder.attempts += 1
        return super().raw_decode(s, idx)


def test_a_large_element_is_decoded_a_few_times_not_once_per_chunk(monkeypatch):
    monkeypatch.setattr(jsonstream, "_READ_CHUNK", 64)
    monkeypatch.setattr(jsonstream.json, "JSONDecoder", CountingDecoder)
    CountingDecoder.attempts = 0
    image = "data:image/png;base64," + "A" * 400_000  # 6,250 chunks
    elements = list(iter_json_array(io.StringIO(json.dumps([{"data": {"image": image}}, {"id": 2}]))))
    assert elements == [{"data": {"image": image}}, {"id": 2}]
    # The window doubles between tries: about log2(6,250) tries for the large element, one for the small one.
    assert CountingDecoder.attempts <= 20


def test_an_element_over_the_size_limit_is_refused_with_the_limit():
    text = json.dumps([{"id": 1}, {"text": "x" * 5_000}, {"id": 3}])
    read = []
    with pytest.raises(JsonArrayError, match="element 1 is larger than 1,000 characters"):
        for element in iter_json_array(io.StringIO(text), max_element_chars=1_000):
            read.append(element)
    assert read == [{"id": 1}]


def test_an_element_nested_too_deeply_is_skipped_and_reading_goes_on(monkeypatch):
    monkeypatch.setattr(jsonstream, "_READ_CHUNK", 100)  # the deep element spans many chunks
    deep = "[" * 20_000 + '"]}[{\\""' + "]" * 20_000
    text = f'[{{"id": 1}}, {deep}, {{"id": 3, "s": "]\\"["}}]'
    elements = list(iter_json_array(io.StringIO(text)))
    assert elements == [{"id": 1}, jsonstream.SkippedElement(1, "nested too deeply to read"), {"id": 3, "s": ']"['}]
