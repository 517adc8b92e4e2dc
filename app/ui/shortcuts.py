"""Keyboard shortcuts of the review screen: one table drives both the on-screen legend and the key listener.

The listener is a document `keydown` handler that clicks buttons by `elem_id`. It stays out of the way while the
reviewer types in a text field, and never uses the keys the box annotator owns while its canvas has focus (Delete,
c, d, e and Space: create, drag, edit, and so on), so both sets of shortcuts work side by side.

One action is in flight at a time. Keys pressed meanwhile are held back in order and applied as soon as the screen
shows the server's answer, so fast typing loses no key and never acts on an item not yet on screen. A verdict key
(A, R, N) shows the item leased ahead in the same frame (`app.ui.stage`), before the server has answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.ui.render import escape

ANNOTATOR_KEYS = frozenset({"delete", "c", "d", "e", " "})


@dataclass(frozen=True)
class Shortcut:
    key: str  # KeyboardEvent.key, lower case
    elem_id: str  # the element to act on
    action: str  # "click" a button / "toggle" a checkbox / "focus" a text field
    description: str


REVIEW_SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("a", "review-accept", "click", "Accept"),
    Shortcut("s", "review-correct", "click", "Correct (save your edits)"),
    Shortcut("r", "review-reject", "click", "Reject"),
    Shortcut("n", "review-skip", "click", "Skip"),
    Shortcut("u", "review-undo", "click", "Undo last"),
    Shortcut("w", "review-reasoning-wrong", "toggle", "Reasoning is wrong"),
    Shortcut("m", "review-comment", "focus", "Comment / reason"),
)
# Digits pick the n-th label of a classification project in this radio group.
LABEL_RADIO_ID = "review-label"

if ANNOTATOR_KEYS & {s.key for s in REVIEW_SHORTCUTS}:
    raise RuntimeError("A review shortcut collides with a key the box annotator owns")

# Actions of the server that move on to the next item: their keys show the item leased ahead at once.
SHOWS_NEXT = frozenset({"a", "r", "n"})
# The status line, whose `data-response` changes with every answer of the server (`app.ui.review.status_html`).
STATUS_ID = "review-status"
# The staged panels (`app.ui.stage`): each holds the item on screen and, hidden, the one leased ahead.
STAGE_IDS = ("review-image", "review-card", "review-cot")

_LISTENER_TEMPLATE = """
() => {
  if (window.riseShortcutsInstalled) { return; }
  window.riseShortcutsInstalled = true;
  const shortcuts = __SHORTCUTS__;
  const labelRadioId = __LABEL_RADIO__;
  const statusId = __STATUS__;
  const stageIds = __STAGES__;
  // A key pressed while the server works on the last action waits here, in order, and is applied once the screen
  // shows the answer: no key is lost, and none acts on an item the reviewer has not seen.
  const queued = [];
  const MAX_QUEUED = 100;
  // An action whose answer never comes (a server error) stops holding keys back after this long.
  const STALE_MS = 15000;
  let pendingSince = 0;
  let lastResponse = null;
  const buttonIds = new Set(Object.values(shortcuts).filter((s) => s.action === "click").map((s) => s.id));
  const textTypes = new Set(["text", "password", "number", "search", "email", "url", "tel", "textarea"]);
  const isTyping = (el) => {
    if (!el) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && textTypes.has((el.type || "text").toLowerCase());
  };
  const visible = (el) => !!el && el.offsetParent !== null;
  const busy = () => pendingSince > 0 && performance.now() - pendingSince < STALE_MS;
  const responseMark = () => {
    const el = document.querySelector("#" + statusId + " [data-response]");
    return el ? el.dataset.response : null;
  };
  const showUpcoming = () => {
    const panels = stageIds.map((id) => document.querySelector("#" + id + " .rise-stage"));
    if (panels.some((panel) => !panel || !panel.dataset.showEarly)) { return; }
    const slides = panels.map((panel) => panel.querySelectorAll(":scope > .rise-slide"));
    if (slides.some((pair) => pair.length < 2)) { return; }
    panels.forEach((panel, i) => {
      slides[i][0].hidden = true;
      slides[i][1].hidden = false;
      panel.dataset.item = panel.dataset.upcoming;
      delete panel.dataset.showEarly;
    });
  };
  const perform = (key) => {
    if (/^[1-9]$/.test(key)) {
      const group = document.getElementById(labelRadioId);
      const options = visible(group) ? group.querySelectorAll("input[type=radio]") : [];
      const option = options[Number(key) - 1];
      if (option && !option.disabled) { option.click(); }
      return;
    }
    const shortcut = shortcuts[key];
    const host = shortcut ? document.getElementById(shortcut.id) : null;
    if (!visible(host)) { return; }
    let target = host;
    if (shortcut.action === "toggle") { target = host.querySelector("input[type=checkbox]") || host; }
    if (shortcut.action === "focus") { target = host.querySelector("textarea, input") || host; }
    if (target.disabled) { return; }
    if (shortcut.action === "focus") { target.focus(); return; }
    if (shortcut.action === "click") {
      pendingSince = performance.now();
      if (shortcut.showsNext) { showUpcoming(); }
    }
    target.click();
  };
  const drain = () => {
    while (queued.length && !busy()) { perform(queued.shift()); }
  };
  // Every answer of the server changes the status line's mark; the keys held back meanwhile go on the next frame,
  // once every component shows the answer.
  new MutationObserver(() => {
    const mark = responseMark();
    if (mark === lastResponse) { return; }
    lastResponse = mark;
    pendingSince = 0;
    if (queued.length) { requestAnimationFrame(drain); }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-response"] });
  // A click with the mouse is an action in flight too.
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[id]") : null;
    if (button && buttonIds.has(button.id) && !pendingSince) { pendingSince = performance.now(); }
  }, true);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isTyping(event.target)) { event.target.blur(); return; }
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (isTyping(event.target)) { return; }
    const key = (event.key || "").toLowerCase();
    const hostId = /^[1-9]$/.test(key) ? labelRadioId : shortcuts[key] ? shortcuts[key].id : null;
    const host = hostId ? document.getElementById(hostId) : null;
    if (!visible(host)) { return; }
    event.preventDefault();
    if (busy() || queued.length) {
      if (queued.length < MAX_QUEUED) { queued.push(key); }
      return;
    }
    perform(key);
  });
}
"""


def listener_js() -> str:
    """JavaScript for `Blocks.load(js=...)`: installs the document key listener once per page."""
    table = {s.key: {"id": s.elem_id, "action": s.action, "showsNext": s.key in SHOWS_NEXT} for s in REVIEW_SHORTCUTS}
    replacements = {
        "__SHORTCUTS__": table,
        "__LABEL_RADIO__": LABEL_RADIO_ID,
        "__STATUS__": STATUS_ID,
        "__STAGES__": list(STAGE_IDS),
    }
    script = _LISTENER_TEMPLATE
    for placeholder, value in replacements.items():
        script = script.replace(placeholder, json.dumps(value))
    return script


def _key_cap(key: str) -> str:
    return f'<kbd class="rise-kbd">{escape(key.upper())}</kbd>'


def legend_html(*, with_labels: bool) -> str:
    """The shortcut legend shown under the review buttons."""
    items = [f"<span>{_key_cap(s.key)} {escape(s.description)}</span>" for s in REVIEW_SHORTCUTS]
    if with_labels:
        items.append(f"<span>{_key_cap('1')}–{_key_cap('9')} pick label</span>")
    items.append(f"<span>{_key_cap('Esc')} leave a text field</span>")
    canvas = " ".join(
        f"<span>{_key_cap(key)} {what}</span>"
        for key, what in (("c", "new box"), ("d", "move boxes"), ("e", "edit label"), ("Del", "delete box"))
    )
    return (
        '<div class="rise-legend" data-testid="shortcut-legend">'
        f'<div class="rise-legend-row">{" ".join(items)}</div>'
        f'<div class="rise-legend-row rise-muted">On the image (click it first): {canvas}</div>'
        "</div>"
    )
