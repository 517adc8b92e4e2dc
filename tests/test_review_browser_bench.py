"""The quick form of `bench/review_browser.py`: a real `rise serve --login` on SQLite, one reviewer in Chromium
pressing keys as fast as the screen allows, and two reviewers over HTTP at once. Nothing may be lost on the way."""

from __future__ import annotations

import pytest

from bench.review_browser import parse_args, run_backend
from tests.utils.browser import CHROMIUM


def test_no_key_press_verdict_or_item_is_lost_or_reviewed_twice(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed; run `make system-deps` (apt-get install -y chromium)")
    args = parse_args(["--items", "400", "--presses", "25", "--team", "2", "--rounds", "10", "--backends", "sqlite"])

    report = run_backend("sqlite", f"sqlite:///{tmp_path / 'bench.db'}", tmp_path, args)

    felt = report["felt"]
    assert felt["lost_presses"] == 0
    assert felt["verdicts"] == 25  # every press showed the next item
    [team] = report["team"]
    assert team["first_errors"] == [] and team["errors"] == 0
    assert team["verdicts"] == 2 * 10  # each reviewer was told every verdict was saved ...
    assert (team["lost_verdicts"], team["double_reviews"]) == (0, 0)  # ... and the database agrees, once per item
