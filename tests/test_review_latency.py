"""The review latency benchmark (`bench/review_latency.py`) in its quick form, so it cannot rot: it runs on each
backend and prints its percentiles. The timings themselves are not checked here (they depend on the machine)."""

from __future__ import annotations

import re

import pytest

from bench.review_latency import main

RESULT_LINE = re.compile(
    r"^(?P<backend>sqlite|postgresql)\s+items=2,000 prereviewed=400 "
    r"reviewers=(?P<reviewers>\d+) rounds=(?P<rounds>\d+) "
    r"p50=\d+\.\d ms p95=\d+\.\d ms p99=\d+\.\d ms max=\d+\.\d ms p95<50ms=(yes|NO) "
)


def result_lines(output: str) -> dict[str, re.Match]:
    return {match["backend"]: match for line in output.splitlines() if (match := RESULT_LINE.match(line))}


def test_quick_bench_on_sqlite_prints_the_percentiles(capsys):
    assert main(["--quick", "--backends", "sqlite", "--reviewers", "2"]) == 0
    lines = result_lines(capsys.readouterr().out)
    assert set(lines) == {"sqlite"}
    assert (lines["sqlite"]["reviewers"], lines["sqlite"]["rounds"]) == ("2", "80")


@pytest.mark.postgres
def test_quick_bench_on_postgresql_prints_the_percentiles(postgres_url, capsys):
    assert main(["--quick", "--backends", "postgresql", "--postgres-url", postgres_url]) == 0
    lines = result_lines(capsys.readouterr().out)
    assert set(lines) == {"postgresql"}
    assert lines["postgresql"]["rounds"] == "40"


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        main(["--backends", "mysql"])
