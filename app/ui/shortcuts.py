"""Keyboard shortcuts of the review screen: one table drives both the on-screen legend and the key listener.

The listener is a document `keydown` handler that clicks buttons by `elem_id`. It stays out of the way while the
reviewer types in a text field, and never uses the keys the box annotator owns while its canvas has focus (Delete,
c, d, e and Space: create, drag, edit, and so on), so both sets of shortcuts work side by side.
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

_LISTENER_TEMPLATE = """
() => {
  if (window.riseShortcutsInstalled) { return; }
  window.riseShortcutsInstalled = true;
  const shortcuts = __SHORTCUTS__;
  const labelRadioId = __LABEL_RADIO__;
  const textTypes = new Set(["text", "password", "number", "search", "email", "url", "tel", "textarea"]);
  const isTyping = (el) => {
    if (!el) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && textTypes.has((el.type || "text").toLowerCase());
  };
  const visible = (el) => !!el && el.offsetParent !== null;
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isTyping(event.target)) { event.target.blur(); return; }
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (isTyping(event.target)) { return; }
    const key = (event.key || "").toLowerCase();
    if (/^[1-9]$/.test(key)) {
      const group = document.getElementById(labelRadioId);
      const options = visible(group) ? group.querySelectorAll("input[type=radio]") : [];
      const option = options[Number(key) - 1];
      if (option && !option.disabled) { event.preventDefault(); option.click(); }
      return;
    }
    const shortcut = shortcuts[key];
    if (!shortcut) { return; }
    const host = document.getElementById(shortcut.id);
    if (!visible(host)) { return; }
    let target = host;
    if (shortcut.action === "toggle") { target = host.querySelector("input[type=checkbox]") || host; }
    if (shortcut.action === "focus") { target = host.querySelector("textarea, input") || host; }
    if (target.disabled) { return; }
    event.preventDefault();
    if (shortcut.action === "focus") { target.focus(); } else { target.click(); }
  });
}
"""


def listener_js() -> str:
    """JavaScript for `Blocks.load(js=...)`: installs the document key listener once per page."""
    table = {s.key: {"id": s.elem_id, "action": s.action} for s in REVIEW_SHORTCUTS}
    return _LISTENER_TEMPLATE.replace("__SHORTCUTS__", json.dumps(table)).replace(
        "__LABEL_RADIO__", json.dumps(LABEL_RADIO_ID)
    )


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
