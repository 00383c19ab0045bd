"""`python -m load tokens` at a small count: the burst completes every token and tells each
waiter once (its exit status says so); the figures themselves live in load/RESULTS.md."""

from __future__ import annotations

from load.cli import main


def test_load_tokens_small(capsys: object) -> None:
    assert main(["tokens", "--count", "30", "--concurrency", "5"]) == 0


def test_load_tokens_with_runs_small() -> None:
    """Each waiter a suspended run in a worker process: every run resumes with its output."""
    assert main(["tokens", "--count", "10", "--runs", "--workers", "1"]) == 0
