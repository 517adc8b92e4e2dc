"""Model text is shown as text: a chain of thought (or model name) full of HTML and Markdown stays inert in the
browser, and the escaping helpers never let markup through."""

from __future__ import annotations

import pytest

from app.ui import render
from tests.utils.ui import seed_detection_project

SCRIPT = "<script>window.riseXss = 'script'</script>"
IMAGE = "<img src=x onerror=\"window.riseXss = 'img'\">"
LINK = "[click me](javascript:window.riseXss='link') and [docs](https://example.com)"
HOSTILE_COT = f"The shapes are clear. {SCRIPT} Also {IMAGE}\nSee {LINK} **bold** `code`"
HOSTILE_MODEL = "<b onmouseover=\"window.riseXss = 'model'\">evil-model</b>"


class TestEscaping:
    def test_cot_html_escapes_every_tag_and_keeps_the_text(self):
        html = render.cot_html(HOSTILE_COT)
        assert "<script" not in html and "<img" not in html and "<b " not in html
        assert "&lt;script&gt;" in html and "&lt;img src=x onerror=&quot;" in html
        assert "[click me](javascript:" in html  # Markdown is never interpreted

    def test_unparseable_output_shows_the_raw_text_escaped(self):
        html = render.cot_html(None, raw_text=f"<answer>{IMAGE}</answer>", parse_error=f"bad {SCRIPT}")
        assert "The model gave no reasoning." in html
        assert "<img" not in html and "<script" not in html and "&lt;answer&gt;" in html

    def test_task_card_escapes_model_name_query_and_answer_labels(self):
        html = render.task_card_html(
            task_type="detection",
            item_id=1,
            position=1,
            remaining=0,
            model_name=HOSTILE_MODEL,
            score=0.5,
            answer=[{"label": IMAGE, "box": [0, 0, 4, 4]}],
            query=SCRIPT,
        )
        assert "<b " not in html and "<img" not in html and "<script" not in html
        assert "evil-model" in html

    @pytest.mark.parametrize("admin", [False, True])
    def test_a_model_folder_shows_by_its_name_and_its_path_only_to_admins_escaped(self, admin):
        path = '/srv/"rise"/<assets>/demo-model'
        card = render.task_card_html(
            task_type="classification",
            item_id=1,
            position=1,
            remaining=0,
            model_name=path,
            score=0.5,
            answer="circle",
            show_model_source=admin,
        )
        assert "<b>Model:</b> " in card and "demo-model" in card
        assert ("/srv/" in card) is admin  # the machine's path, in the tooltip only
        assert "<assets>" not in card and '"rise"' not in card
        if admin:
            assert 'title="/srv/&quot;rise&quot;/&lt;assets&gt;/demo-model">demo-model</span>' in card

    @pytest.mark.parametrize(
        ("model_name", "shown"),
        [
            ("shapes-v2", "shapes-v2"),  # a version by its name
            ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"),  # a Hub id as it is
            ("/work/assets/demo-model", "demo-model"),  # a folder by its own name
            ("~/models/tiny", "tiny"),
            ("C:\\models\\tiny", "tiny"),
            ("/m/base+/runs/job-00003/adapter", "base + adapter"),  # a base model with an adapter folder
        ],
    )
    def test_model_display_name(self, model_name, shown):
        assert render.model_display_name(model_name) == shown


@pytest.mark.browser
def test_hostile_cot_is_inert_text_in_the_browser(runtime, tmp_path, serve_app, chromium_browser):
    seed_detection_project(runtime, tmp_path, n_items=1, cot=HOSTILE_COT, model_name=HOSTILE_MODEL)
    app = serve_app(runtime, require_login=False)
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(app.url)
    cot = page.locator("#review-cot")
    cot.get_by_text("The shapes are clear.", exact=False).wait_for(timeout=15_000)
    page.get_by_text("evil-model", exact=False).first.wait_for(timeout=15_000)
    page.locator("#review-card").hover()  # would fire an injected onmouseover
    page.wait_for_timeout(300)

    shown = cot.inner_text()
    assert SCRIPT in shown and IMAGE in shown and LINK in shown and "**bold**" in shown
    assert HOSTILE_MODEL in page.locator("#review-card").inner_text()
    assert cot.locator("script, img, a, strong, code").count() == 0
    assert page.locator("#review-card").locator("[onmouseover], [onerror], img, script").count() == 0
    assert page.evaluate("() => window.riseXss === undefined")
    assert dialogs == []
