"""The review app in Debian's Chromium: sign in, review ten items with the keyboard (accept, correct a box by
dragging it, reject, undo; correct a label with a written reasoning), and check the database holds exactly those
verdicts."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.services.imports import import_paths
from app.services.projects import create_project
from app.ui.display import display_scale
from db.models import Annotation, AnnotationSource, Item, Review
from tests.utils.browser import save_screenshot
from tests.utils.factories import write_pngs
from tests.utils.review_factories import add_prediction
from tests.utils.ui import REVIEWER, create_accounts, seed_detection_project

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
# A reviewer's reasoning for a correction, with markup that must stay text.
WHY = "Two warm colours and two cool ones: <b>balanced</b>."


def card_text(page) -> str:
    return page.locator("#review-card").inner_text()


def wait_for_item(page, item_id: int) -> None:
    page.locator("#review-card").get_by_text(re.compile(rf"^Item #{item_id}$")).wait_for(timeout=TIMEOUT_MS)


def press(page, key: str, next_item: int) -> None:
    page.keyboard.press(key)
    wait_for_item(page, next_item)


def sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.locator("#login-username input, #login-username textarea").fill(username)
    page.locator("#login-password input").fill(password)
    page.locator("#login-submit").click()
    page.get_by_test_id("signed-in-as").wait_for(timeout=TIMEOUT_MS)


def drag_first_box(page, box: list[float], dx: int, dy: int) -> None:
    """Drag the box whose original-pixel corners are `box` by (dx, dy) screen pixels, in the annotator's drag mode.

    The annotator draws the (enlarged) image at real size centred horizontally, or scaled down to the canvas
    width when it is wider, so the box's screen position follows from the canvas geometry."""
    canvas = page.locator("#review-annotator canvas")
    width = canvas.evaluate("c => c.clientWidth")
    frame = canvas.bounding_box()
    enlarge = display_scale(64, 64)
    shown = 64 * enlarge
    fit = min(1.0, width / shown)
    left = frame["x"] + (width - shown * fit) / 2
    centre_x = left + (box[0] + box[2]) / 2 * enlarge * fit
    centre_y = frame["y"] + (box[1] + box[3]) / 2 * enlarge * fit
    page.mouse.move(centre_x, centre_y)
    page.mouse.down()
    page.mouse.move(centre_x + dx / 2, centre_y + dy / 2, steps=5)
    page.mouse.move(centre_x + dx, centre_y + dy, steps=5)
    page.mouse.up()


def test_reviewer_signs_in_and_reviews_ten_items_with_the_keyboard(runtime, tmp_path, serve_app, chromium_browser):
    seeded = seed_detection_project(runtime, tmp_path, n_items=12)
    create_accounts(runtime)
    app = serve_app(runtime, require_login=True)
    items = seeded.item_ids
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})

    sign_in(page, app.url, *REVIEWER)
    wait_for_item(page, items[0])
    assert page.get_by_role("tab", name="Users").count() == 0  # admin tabs are not even rendered for a reviewer
    assert "I see" in page.locator("#review-cot").inner_text()
    assert "Accept" in page.get_by_test_id("shortcut-legend").inner_text()

    press(page, "a", items[1])  # 0: accept
    press(page, "a", items[2])  # 1: accept

    # 2: correct: drag the first predicted box 40 screen pixels right and down (5 original pixels), then S.
    moved_box = seeded.answers[items[2]][0]["box"]
    page.locator("#review-annotator canvas").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)  # the annotator lays out its image after the value arrives
    save_screenshot(page, "review.png")
    drag_first_box(page, moved_box, 40, 40)
    press(page, "s", items[3])

    # 3: reject with a reason typed in the comment box (M focuses it, Esc leaves it so keys are shortcuts again).
    page.keyboard.press("m")
    page.keyboard.type("counts the same triangle twice")
    page.keyboard.press("Escape")
    press(page, "r", items[4])

    press(page, "a", items[5])  # 4: accept ...
    press(page, "u", items[4])  # ... undone: item 4 comes back
    page.keyboard.press("w")  # flag the reasoning as wrong this time
    press(page, "a", items[5])  # 4: accept again, reasoning flagged

    for index, key in zip(range(5, 10), ["a", "r", "a", "a", "r"], strict=True):
        press(page, key, items[index + 1])
    assert "11 of 12" in card_text(page)
    # The browser keeps no record of the events in its storage: no run history, so no password either.
    stored = page.evaluate("() => JSON.stringify(Object.assign({}, window.localStorage))")
    assert REVIEWER[1] not in stored and "run-history" not in stored

    with runtime.sessions() as session:
        reviews = list(session.scalars(select(Review).order_by(Review.id)))
        annotations = {a.item_id: a for a in session.scalars(select(Annotation))}
    active = {r.item_id: r for r in reviews if r.undone_at is None}
    undone = [r for r in reviews if r.undone_at is not None]
    expected = ["accept", "accept", "correct", "reject", "accept", "accept", "reject", "accept", "accept", "reject"]
    assert [active[item].verdict.value for item in items[:10]] == expected
    assert len(active) == 10 and len(reviews) == 11
    assert [(r.item_id, r.verdict.value, r.reasoning_wrong) for r in undone] == [(items[4], "accept", False)]
    assert active[items[4]].reasoning_wrong is True
    assert active[items[3]].comment == "counts the same triangle twice"
    assert all(r.time_spent_ms is not None and r.time_spent_ms >= 0 for r in reviews)

    corrected = active[items[2]].corrected_answer
    assert len(corrected) == len(seeded.answers[items[2]])
    new_box = corrected[0]["box"]
    shift = [new - old for new, old in zip(new_box, moved_box, strict=True)]
    assert all(abs(s - 5) <= 1.5 for s in shift), f"box moved by {shift}, expected about 5 px each way"
    untouched = sorted((obj["label"], obj["box"]) for obj in corrected[1:])
    predicted = sorted((obj["label"], obj["box"]) for obj in seeded.answers[items[2]][1:])
    assert [label for label, _ in untouched] == [label for label, _ in predicted]
    assert [v for _, box in untouched for v in box] == pytest.approx([v for _, box in predicted for v in box])

    # Accept and correct leave trusted annotations; reject does not.
    assert {item for item, a in annotations.items() if a.source is not AnnotationSource.imported} == {
        items[i] for i, verdict in enumerate(expected) if verdict != "reject"
    }


def test_classification_labels_are_picked_with_number_keys(runtime, tmp_path, serve_app, chromium_browser):
    moods = create_project(runtime, "moods", "classification", ["sunny", "stormy", "balanced"]).id
    summary = import_paths(runtime, moods, write_pngs(tmp_path / "moods", 2, size=(48, 48)))
    item_ids = sorted(summary.item_ids.values())
    with runtime.sessions.begin() as session:
        for item_id, score in zip(item_ids, (0.1, 0.2), strict=True):
            add_prediction(session, session.get(Item, item_id), "sunny", score=score, cot="Bright colours.")
    app = serve_app(runtime)  # loopback: no login, the local admin reviews
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    wait_for_item(page, item_ids[0])
    assert page.locator("#review-label input[type=radio]:checked").get_attribute("value") == "sunny"

    page.keyboard.press("3")  # the third label: balanced
    page.locator("#review-label input[value=balanced]:checked").wait_for(timeout=TIMEOUT_MS)
    # Y: the reviewer writes why (kept as typed, markup and all), Esc leaves the box so S is a shortcut again.
    page.keyboard.press("y")
    page.keyboard.type(WHY)
    page.keyboard.press("Escape")
    press(page, "s", item_ids[1])
    assert page.locator("#review-reasoning textarea").input_value() == ""  # a new item starts with none
    page.keyboard.press("a")
    page.locator("#review-card").get_by_text("That was the last item", exact=False).wait_for(timeout=TIMEOUT_MS)

    with runtime.sessions() as session:
        rows = list(session.scalars(select(Review).order_by(Review.id)))
    assert [(r.item_id, r.verdict.value, r.corrected_answer, r.corrected_cot) for r in rows] == [
        (item_ids[0], "correct", "balanced", WHY),
        (item_ids[1], "accept", None, None),
    ]


def test_keys_typed_faster_than_the_server_are_all_applied_in_order(runtime, tmp_path, serve_app, chromium_browser):
    """Twelve verdict keys typed without waiting: the item leased ahead is on screen in the frame of the key press,
    keys pressed while an answer is on its way wait their turn, and every verdict lands on the item it was meant for.
    """
    moods = create_project(runtime, "moods", "classification", ["sunny", "stormy", "balanced"]).id
    summary = import_paths(runtime, moods, write_pngs(tmp_path / "moods", 14, size=(48, 48)))
    item_ids = sorted(summary.item_ids.values())
    with runtime.sessions.begin() as session:
        for rank, item_id in enumerate(item_ids):
            add_prediction(session, session.get(Item, item_id), "stormy", score=rank / 100, cot=f"Cloud {rank}.")
    app = serve_app(runtime)
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    wait_for_item(page, item_ids[0])
    item_ahead = f'#review-card .rise-slide[data-item="{item_ids[1]}"]'
    page.locator(item_ahead).wait_for(state="attached", timeout=TIMEOUT_MS)

    # Count the actions that carry keys typed ahead together.
    page.evaluate(
        """() => {
          window.sentTogether = 0;
          document.getElementById("review-send-typed-keys").addEventListener("click", () => window.sentTogether++);
        }"""
    )
    # The first key shows the next item before anything comes back from the server: in the same task as the key.
    shown = page.evaluate(
        """() => {
          document.dispatchEvent(new KeyboardEvent("keydown", {key: "a", bubbles: true}));
          const slide = [...document.querySelectorAll("#review-card .rise-slide")].find((s) => !s.hidden);
          return slide.textContent;
        }"""
    )
    assert f"Item #{item_ids[1]}" in shown
    keys = ["r", "a", "a", "n", "r", "a", "r", "a", "a", "a", "r"]
    for key in keys:
        page.keyboard.press(key)
    wait_for_item(page, item_ids[12])
    page.locator("#review-status [data-response]").get_by_text(f"Item #{item_ids[11]}").wait_for(timeout=TIMEOUT_MS)
    # Keys typed while an answer was on its way went to the server together, not one round trip each.
    assert page.evaluate("() => window.sentTogether") >= 1

    with runtime.sessions() as session:
        rows = list(session.scalars(select(Review).order_by(Review.id)))
    verdicts = {"a": "accept", "r": "reject"}
    expected = [(item_ids[0], "accept")] + [
        (item_ids[i + 1], verdicts[key]) for i, key in enumerate(keys) if key != "n"
    ]
    assert [(r.item_id, r.verdict.value) for r in rows] == expected
