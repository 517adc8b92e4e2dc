"""Image import: validation, content-addressed storage, deduplication, EXIF orientation, splits and queries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from app.media import ImageRejected, prepare_image
from app.runtime import Runtime, open_runtime
from app.services.imports import ImportFailed, expand_paths, import_paths, load_query_file, split_for
from app.services.projects import create_project
from app.settings import load_settings
from db.crud import projects as crud
from db.models import Item, Split
from rise.synthetic import generate_scene
from tests.utils.factories import (
    write_blank_png,
    write_exif_jpeg,
    write_png,
    write_pngs,
    write_truncated_png,
)


def _items(runtime: Runtime, project: str) -> list[Item]:
    with runtime.sessions.begin() as session:
        found = crud.require_project(session=session, name=project)
        return crud.list_items(session=session, project_id=found.id)


def _reasons(summary) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in summary.skipped}


def test_thousand_images_and_four_bad_files_yield_thousand_items_and_four_reasoned_skips(runtime, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for seed in range(1000):
        generate_scene(seed).image.save(folder / f"scene_{seed:04d}.png")
    write_truncated_png(folder / "truncated.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    write_blank_png(folder / "huge.png", 30_000, 30_000)
    shapes_id = create_project(runtime, "shapes", "classification", ["circle", "square"]).id

    started = time.perf_counter()
    calls: list[tuple[int, int]] = []
    first = import_paths(runtime, shapes_id, [folder], progress=lambda done, total: calls.append((done, total)))
    elapsed = time.perf_counter() - started

    assert (first.added, first.duplicates, len(first.skipped)) == (1000, 0, 4)
    reasons = _reasons(first)
    assert reasons["truncated.png"].startswith("truncated or corrupt image data")
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["notes.jpg"].startswith("not an image")
    assert "900,000,000 pixels exceeds the limit" in reasons["huge.png"]
    assert calls[-1] == (1004, 1004) and len(calls) == 1004
    assert len(_items(runtime, "shapes")) == 1000
    assert len(first.item_ids) == 1000
    # 1,000 tiny images must import in seconds; the bound is loose for slow shared CI machines.
    assert elapsed < 20, f"import took {elapsed:.1f} s"

    second = import_paths(runtime, shapes_id, [folder])
    assert (second.added, second.duplicates, len(second.skipped)) == (0, 1000, 4)
    assert second.item_ids == first.item_ids
    assert len(_items(runtime, "shapes")) == 1000


def test_same_content_twice_in_one_run_is_one_item_and_one_duplicate(runtime, tmp_path):
    a = write_png(tmp_path / "a.png", seed=7)
    b = tmp_path / "copy of a.png"
    b.write_bytes(a.read_bytes())
    shapes_id = create_project(runtime, "shapes", "classification", ["circle", "square"]).id

    summary = import_paths(runtime, shapes_id, [a, b])

    assert (summary.added, summary.duplicates, summary.skipped) == (1, 1, [])
    assert summary.item_ids[str(a)] == summary.item_ids[str(b)]


def test_stored_file_is_content_addressed_and_shared_between_projects(runtime, tmp_path):
    png = write_png(tmp_path / "a.png", seed=3)
    one_id = create_project(runtime, "one", "classification", ["x", "y"]).id
    two_id = create_project(runtime, "two", "detection", ["x"]).id

    import_paths(runtime, one_id, [png])
    import_paths(runtime, two_id, [png])

    (first,), (second,) = _items(runtime, "one"), _items(runtime, "two")
    assert first.sha256 == second.sha256 and first.media_path == second.media_path
    assert first.media_path == f"{first.sha256[:2]}/{first.sha256}.png"
    stored = runtime.settings.media_dir / first.media_path
    assert stored.read_bytes() == png.read_bytes()
    assert [p for p in runtime.settings.media_dir.rglob("*") if p.is_file()] == [stored]


def test_exif_orientation_is_applied_and_size_recorded_upright(runtime, tmp_path):
    rotated = write_exif_jpeg(tmp_path / "phone.jpg", (40, 20), orientation=6)
    upright = write_exif_jpeg(tmp_path / "scanner.jpg", (40, 20), orientation=1)
    photos_id = create_project(runtime, "photos", "classification", ["a", "b"]).id

    summary = import_paths(runtime, photos_id, [rotated, upright])

    assert summary.added == 2
    items = {item.original_name: item for item in _items(runtime, "photos")}
    phone, scanner = items["phone.jpg"], items["scanner.jpg"]
    assert (phone.width, phone.height) == (20, 40)
    assert phone.meta == {"exif_transposed": True}
    with Image.open(runtime.settings.media_dir / phone.media_path) as stored:
        assert stored.size == (20, 40)
        assert stored.getexif().get(0x0112, 1) == 1  # no second rotation by viewers
        # Orientation 6 displays the stored left edge (red) at the top.
        red, _, blue = stored.convert("RGB").getpixel((10, 2))
        assert red > 200 and blue < 60
    # No orientation to apply: the bytes are copied, not re-encoded.
    assert (scanner.width, scanner.height) == (40, 20)
    assert (runtime.settings.media_dir / scanner.media_path).read_bytes() == upright.read_bytes()


def test_pixel_limit_comes_from_settings_and_is_checked_before_decoding(tmp_path):
    settings = load_settings({"RISE_DATA_DIR": str(tmp_path / "data"), "RISE_MAX_IMAGE_PIXELS": "100"})
    runtime = open_runtime(settings, upgrade=True)
    try:
        tiny_id = create_project(runtime, "tiny", "classification", ["a", "b"]).id
        small = write_png(tmp_path / "small.png", seed=1, size=(10, 10))
        big = write_png(tmp_path / "big.png", seed=2, size=(16, 16))
        summary = import_paths(runtime, tiny_id, [small, big])
    finally:
        runtime.close()
    assert summary.added == 1
    assert summary.skipped == [
        (str(big), "too large: 16×16 = 256 pixels exceeds the limit of 100 (RISE_MAX_IMAGE_PIXELS)")
    ]


def test_limit_above_pillows_own_is_honoured_and_checked_from_the_header(tmp_path, monkeypatch):
    # prepare_image raises Pillow's process-wide ceiling to a larger configured limit; restore it after the test.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    data = write_blank_png(tmp_path / "huge.png", 30_000, 30_000).read_bytes()
    # 500 M is above Pillow's default refusal (179 M), so our header check is what refuses the 900 M image; decoding
    # it would take 900 MB and seconds.
    with pytest.raises(ImageRejected, match="30000×30000 = 900,000,000 pixels exceeds the limit of 500,000,000"):
        prepare_image(data, max_pixels=500_000_000)


def test_hostile_file_names_are_stored_verbatim_and_never_used_as_paths(runtime, tmp_path):
    names = [
        "<script>alert('x').png",  # no "</script>": "/" cannot appear in a file name
        "<img src=x onerror=alert(1)>.png",
        "naïve café 画像 🐱.png",
        "with  spaces and 'quotes\".png",
        "[bold red]markup[link=x].png",
        ("long-" * 48) + ".png",
    ]
    for seed, name in enumerate(names):
        write_png(tmp_path / "in" / name, seed=seed)
    names_id = create_project(runtime, "names", "classification", ["a", "b"]).id

    summary = import_paths(runtime, names_id, [tmp_path / "in"])

    assert summary.added == len(names)
    items = _items(runtime, "names")
    assert sorted(item.original_name for item in items) == sorted(names)
    for item in items:
        assert item.media_path == f"{item.sha256[:2]}/{item.sha256}.png"


def test_undecodable_file_name_bytes_are_replaced_not_fatal(runtime, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    raw_name = b"latin1-caf\xe9.png"
    write_png(folder / "tmp.png", seed=4).rename(folder / raw_name.decode("utf-8", "surrogateescape"))
    bytes_id = create_project(runtime, "bytes", "classification", ["a", "b"]).id

    summary = import_paths(runtime, bytes_id, [folder])

    assert summary.added == 1
    assert _items(runtime, "bytes")[0].original_name == "latin1-caf\ufffd.png"


def test_folders_globs_and_missing_paths_are_expanded_with_reasons(tmp_path):
    write_png(tmp_path / "a" / "one.png", seed=1)
    write_png(tmp_path / "a" / "sub" / "two.png", seed=2)
    write_png(tmp_path / "a" / ".hidden" / "three.png", seed=3)
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    write_png(tmp_path / "b" / "four.png", seed=4)

    files, missing = expand_paths(
        [tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "a" / "one.png", "nope.png", "none/*.gif"]
    )

    assert [path.name for path in files] == ["one.png", "two.png", "four.png"]
    assert missing == [("nope.png", "no such file or folder"), ("none/*.gif", "no file matches this pattern")]


def test_split_is_deterministic_by_content_hash(runtime, tmp_path):
    paths = write_pngs(tmp_path / "in", 200)
    half_id = create_project(runtime, "half", "classification", ["a", "b"], eval_fraction=0.5).id
    again_id = create_project(runtime, "again", "classification", ["a", "b"], eval_fraction=0.5).id

    import_paths(runtime, half_id, paths)
    import_paths(runtime, again_id, list(reversed(paths)))

    first = {item.sha256: item.split for item in _items(runtime, "half")}
    second = {item.sha256: item.split for item in _items(runtime, "again")}
    assert first == second
    assert 60 < sum(split is Split.eval for split in first.values()) < 140
    assert split_for("0" * 64, 0.1) is Split.eval and split_for("f" * 64, 0.1) is Split.train


def test_grounding_items_need_a_query_from_the_option_or_a_query_file(runtime, tmp_path):
    a, b, c = (write_png(tmp_path / name, seed=i) for i, name in enumerate(["a.png", "b.png", "c.png"]))
    (tmp_path / "queries.json").write_text(json.dumps({"a.png": "the red circle"}))
    (tmp_path / "queries.csv").write_text("file,query\nb.png,the square on the left\n")
    refer_id = create_project(runtime, "refer", "grounding").id

    without = import_paths(runtime, refer_id, [a])
    assert without.added == 0 and "needs one" in without.skipped[0].reason

    queries = load_query_file(tmp_path / "queries.json") | load_query_file(tmp_path / "queries.csv")
    summary = import_paths(runtime, refer_id, [a, b, c], queries=queries, query="the largest shape")

    assert summary.added == 3
    by_name = {item.original_name: item.query for item in _items(runtime, "refer")}
    assert by_name == {"a.png": "the red circle", "b.png": "the square on the left", "c.png": "the largest shape"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("q.json", "[1, 2]", "one JSON object"),
        ("q.json", "{not json", "not valid JSON"),
        ("q.csv", "name,text\na.png,x\n", "`file` and `query` columns"),
        ("q.txt", "a.png the query", "must end in .json or .csv"),
    ],
)
def test_malformed_query_file_gives_a_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ImportFailed, match=message):
        load_query_file(tmp_path / name)


def test_import_into_an_unknown_project_is_an_import_error(runtime, tmp_path):
    project_id = create_project(runtime, "shapes", "classification", ["a", "b"]).id
    with pytest.raises(ImportFailed, match=f"Project #{project_id + 1} does not exist"):
        import_paths(runtime, project_id + 1, [tmp_path])


def test_import_and_reimport_on_each_backend(db_runtime, tmp_path):
    paths = write_pngs(tmp_path / "in", 45)
    (tmp_path / "in" / "copy.png").write_bytes(paths[0].read_bytes())
    shapes_id = create_project(db_runtime, "shapes", "classification", ["a", "b"], eval_fraction=0.2).id

    first = import_paths(db_runtime, shapes_id, [tmp_path / "in"], batch_size=10)  # several batches
    second = import_paths(db_runtime, shapes_id, [tmp_path / "in"], batch_size=10)

    assert (first.added, first.duplicates, second.added, second.duplicates) == (45, 1, 0, 46)
    items = _items(db_runtime, "shapes")
    assert len(items) == 45 and {item.split for item in items} == {Split.train, Split.eval}
