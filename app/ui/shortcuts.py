"""Keyboard shortcuts of the review screen: one table drives both the on-screen legend and the key listener.

The listener is a document `keydown` handler that clicks buttons by `elem_id`. It stays out of the way while the
reviewer types in a text field, and never uses the keys the box annotator owns while its canvas has focus (Delete,
c, d, e and Space: create, drag, edit, and so on), so both sets of shortcuts work side by side.

One action is in flight at a time. Keys pressed meanwhile are held back in order and applied as soon as the screen
shows the server's answer, so fast typing loses no key and never acts on another item than the one on screen when it
was pressed. A verdict key (A, R, N) shows the next item leased ahead in the same frame (`app.ui.stage`), before the
server has answered, and so do the verdict keys after it, as far as the items leased ahead go; verdict keys held
back go to the server together, in one action. If an action fails, the keys held back behind it are dropped and the
screen goes back to the server's item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.ui.render import escape
from app.ui.review_actions import MAX_TYPED_AHEAD

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
    Shortcut("y", "review-reasoning", "focus", "Your reasoning (with a correction)"),
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
# The staged panels (`app.ui.stage`): each holds the item on screen and, hidden, the ones leased ahead.
STAGE_IDS = ("review-image", "review-card", "review-cot")
# The hidden text field and button through which verdict keys typed ahead of the server go to it together
# (`app.ui.review_actions.apply_typed_keys`).
TYPED_KEYS_ID = "review-typed-keys"
SEND_TYPED_KEYS_ID = "review-send-typed-keys"

_LISTENER_TEMPLATE = """
() => {
  if (window.riseShortcutsInstalled) { return; }
  window.riseShortcutsInstalled = true;
  const shortcuts = __SHORTCUTS__;
  const labelRadioId = __LABEL_RADIO__;
  const statusId = __STATUS__;
  const stageIds = __STAGES__;
  const typedKeysId = __TYPED_KEYS__;
  const sendTypedKeysId = __SEND_TYPED_KEYS__;
  const maxTogether = __MAX_TOGETHER__;
  // Keys wait here, in order, while the server works on an action: each with the item on screen when it was
  // pressed, and whether its next item was already shown. None is lost, and none acts on another item than the one
  // the reviewer saw: if the server's item is not that one when its turn comes, the keys left are dropped.
  const queued = [];
  const MAX_QUEUED = 100;
  // An action whose answer never comes (a server error) stops holding keys back after this long.
  const STALE_MS = 15000;
  let pendingSince = 0;
  let lastResponse = null;
  // How many slides the screen shows beyond the server's current item (verdicts shown before they are answered).
  let ahead = 0;
  const buttonIds = new Set(Object.values(shortcuts).filter((s) => s.action === "click").map((s) => s.id));
  const textTypes = new Set(["text", "password", "number", "search", "email", "url", "tel", "textarea"]);
  const isTyping = (el) => {
    if (!el) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && textTypes.has((el.type || "text").toLowerCase());
  };
  const visible = (el) => !!el && el.offsetParent !== null;
  const busy = () => pendingSince > 0 && performance.now() - pendingSince < STALE_MS;
  const status = () => document.querySelector("#" + statusId + " [data-response]");
  const panels = () => stageIds.map((id) => document.querySelector("#" + id + " .rise-stage"));
  const slidesOf = (panel) => panel.querySelectorAll(":scope > .rise-slide");
  const showSlide = (index) => {
    for (const panel of panels()) {
      if (!panel) { continue; }
      slidesOf(panel).forEach((slide, i) => { slide.hidden = i !== index; });
    }
  };
  // The item the server has on screen, and the one the reviewer sees.
  const serverItem = () => { const card = panels()[1]; return card ? card.dataset.item : null; };
  const shownItem = () => {
    const card = panels()[1];
    const slide = card ? slidesOf(card)[ahead] : null;
    return slide ? slide.dataset.item : serverItem();
  };
  const canStepAhead = () => {
    const all = panels();
    if (all.some((panel) => !panel || !panel.dataset.showEarly)) { return false; }
    return all.every((panel) => ahead + 1 < slidesOf(panel).length);
  };
  const target = (shortcut) => {
    const host = document.getElementById(shortcut.id);
    if (!visible(host)) { return null; }
    if (shortcut.action === "toggle") { return host.querySelector("input[type=checkbox]") || host; }
    if (shortcut.action === "focus") { return host.querySelector("textarea, input") || host; }
    return host;
  };
  // Apply one key; true when it started an action of the server.
  const perform = (entry) => {
    if (/^[1-9]$/.test(entry.key)) {
      const group = document.getElementById(labelRadioId);
      const options = visible(group) ? group.querySelectorAll("input[type=radio]") : [];
      const option = options[Number(entry.key) - 1];
      if (option && !option.disabled) { option.click(); }
      return false;
    }
    const shortcut = shortcuts[entry.key];
    const element = target(shortcut);
    if (!element || element.disabled) { return false; }
    if (shortcut.action === "focus") { element.focus(); return false; }
    if (shortcut.action === "toggle") { element.click(); return false; }
    if (shortcut.showsNext && !entry.shown && canStepAhead()) { ahead += 1; showSlide(ahead); }
    pendingSince = performance.now();
    element.click();
    return true;
  };
  // Verdict keys waiting at the head of the queue, each for an item the page knows, go to the server in one action:
  // the server keeps up with a reviewer who types faster than it answers one key at a time.
  const sendTogether = () => {
    const isVerdict = (entry) => entry.item !== null && !!(shortcuts[entry.key] && shortcuts[entry.key].showsNext);
    let count = 0;
    while (count < queued.length && count < maxTogether && isVerdict(queued[count])) { count += 1; }
    const field = document.querySelector("#" + typedKeysId + " textarea, #" + typedKeysId + " input");
    const button = document.getElementById(sendTypedKeysId);
    if (count < 2 || !field || !button) { return false; }
    const run = queued.splice(0, count);
    const keys = run.map((entry, i) => ({
      key: entry.key,
      item: Number(entry.item),
      // How long the item was on screen: since the key before it, which showed it.
      ms: i === 0 ? null : Math.max(0, Math.round(entry.at - run[i - 1].at)),
    }));
    for (const entry of run) {
      if (!entry.shown && canStepAhead()) { ahead += 1; }
    }
    showSlide(ahead);
    field.value = JSON.stringify(keys);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    pendingSince = performance.now();
    button.click();
    return true;
  };
  const pump = () => {
    while (queued.length && !busy()) {
      const entry = queued[0];
      if (entry.item !== null && serverItem() !== null && entry.item !== serverItem()) {
        // The server moved elsewhere (an error, another window): these keys were meant for other items.
        queued.length = 0;
        ahead = 0;
        showSlide(0);
        return;
      }
      if (sendTogether()) { return; }
      queued.shift();
      if (perform(entry)) { return; }
    }
  };
  // Every answer of the server changes the status line's mark. The server re-renders the panels with its current
  // item first: the screen steps again past the items whose verdicts are still on their way, before it is painted.
  new MutationObserver(() => {
    const element = status();
    const mark = element ? element.dataset.response : null;
    if (mark === lastResponse) { return; }
    lastResponse = mark;
    pendingSince = 0;
    if (element && element.dataset.outcome === "failed") {
      queued.length = 0;
    }
    ahead = queued.filter((entry) => entry.shown).length;
    if (ahead) { showSlide(ahead); }
    if (queued.length) { setTimeout(pump, 0); }
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
    if (!visible(hostId ? document.getElementById(hostId) : null)) { return; }
    event.preventDefault();
    if (queued.length >= MAX_QUEUED) { return; }
    // The item the key is for: the one on screen, unless keys before it wait to move the screen on (then it is
    // whichever item they leave on screen, and there is nothing to check it against).
    const settled = queued.every((e) => e.shown);
    const entry = { key: key, item: settled ? shownItem() : null, shown: false, at: performance.now() };
    // A verdict key whose turn is behind other verdicts shows its next item now, if it is in the page already.
    const showsNext = !!(shortcuts[key] && shortcuts[key].showsNext);
    if (showsNext && (busy() || queued.length) && settled && canStepAhead()) {
      ahead += 1;
      showSlide(ahead);
      entry.shown = true;
    }
    queued.push(entry);
    pump();
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
        "__TYPED_KEYS__": TYPED_KEYS_ID,
        "__SEND_TYPED_KEYS__": SEND_TYPED_KEYS_ID,
        "__MAX_TOGETHER__": MAX_TYPED_AHEAD,
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
