"""The batch runner: a crashing slide fails alone, retries are counted, the summary is written."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from slidescope.app.batch.cluster import SchedulerUnreachableError
from slidescope.app.batch.runner import choose_workers, run_batch
from slidescope.app.jobs import run_job
from toy_tasks import run_toy_task, toy_cohort

TEXTS = {"a": "first", "crash": "abort", "flaky": "kill once", "b": "second slide"}


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def check_outcomes(folder: Path, outcomes, retried: int = 2) -> None:
    by_id = {o.slide_id: o for o in outcomes}
    assert [o.slide_id for o in outcomes] == list(TEXTS)
    assert by_id["a"].status == by_id["b"].status == by_id["flaky"].status == "done"
    assert by_id["flaky"].attempts == 2  # a retry, counted as such
    assert by_id["crash"].status == "failed"
    assert str(folder / "crash.svs") in by_id["crash"].error
    for name in ("a", "b", "flaky"):
        assert (folder / "out" / f"{name}.txt").read_text() == TEXTS[name]
    assert not (folder / "out" / "crash.txt").exists()
    counts = summary(folder / "out")["counts"]
    assert counts.pop("retried") >= retried  # the crash and the flaky slide, at least
    assert counts == {"done": 3, "skipped": 0, "no tissue": 0, "failed": 1, "not run": 0}


def test_a_crashing_slide_fails_alone_in_the_serial_child(tmp_path: Path) -> None:
    tasks = toy_cohort(tmp_path, TEXTS)
    outcomes = run_job(
        run_batch(tasks, run_toy_task, tmp_path / "out", workers=0, warm_modules=())
    )
    check_outcomes(tmp_path, outcomes)
    assert summary(tmp_path / "out")["counts"]["retried"] == 2
    crash = outcomes[1]
    assert "the decoder crashed (signal 6)" in crash.error
    assert crash.attempts == 2  # bounded: tried twice, then given up (both counted)

    # a second run: every finished slide is skipped, the crashing one fails again
    again = run_job(run_batch(tasks, run_toy_task, tmp_path / "out", workers=0, warm_modules=()))
    assert [o.status for o in again] == ["skipped", "failed", "skipped", "skipped"]


@pytest.mark.slow
def test_a_slide_that_kills_dask_workers_is_failed_after_bounded_tries(tmp_path: Path) -> None:
    tasks = toy_cohort(tmp_path, TEXTS)
    outcomes = run_job(
        run_batch(tasks, run_toy_task, tmp_path / "out", workers=2, warm_modules=())
    )
    # on Dask a finished slide whose result was held by a worker that died is computed
    # again: it counts as retried too, so "retried" is at least the two killers
    check_outcomes(tmp_path, outcomes)
    assert "died under it" in outcomes[1].error


def test_the_summary_is_written_when_the_batch_is_interrupted(tmp_path: Path) -> None:
    tasks = toy_cohort(tmp_path, {"a": "one", "b": "two", "c": "three"})
    job = run_batch(tasks, run_toy_task, tmp_path / "out", workers=0, warm_modules=())
    next(job)  # started
    step = next(job)  # the first slide is done
    assert step.done == 1
    job.close()  # what Ctrl-C does through run_with_progress
    record = summary(tmp_path / "out")
    assert record["interrupted"] is True
    assert [s["status"] for s in record["slides"]] == ["done", "not run", "not run"]


def test_an_unreachable_scheduler_is_one_error_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tasks = toy_cohort(tmp_path, {"a": "one"})
    start = time.perf_counter()
    job = run_batch(tasks, run_toy_task, tmp_path / "out", scheduler=f"tcp://127.0.0.1:{port}")
    with pytest.raises(SchedulerUnreachableError, match=f"127.0.0.1:{port}"):
        run_job(job)
    assert time.perf_counter() - start < 10
    assert summary(tmp_path / "out")["counts"]["not run"] == 1


def test_auto_workers_pick_serial_for_little_work(tmp_path: Path) -> None:
    small = [tmp_path / f"{i}.svs" for i in range(4)]
    for path in small:
        path.write_bytes(b"x" * 1000)
    assert choose_workers(small, available_cores=8) == 0
    assert choose_workers(small[:1], available_cores=8) == 0
    big = tmp_path / "big.svs"
    with big.open("wb") as f:  # sparse: 2 GB claimed on disk, nothing written
        f.truncate(2 << 30)
    assert choose_workers([big, big, big], available_cores=8) == 3
    assert choose_workers([big, big, big], available_cores=1) == 0
