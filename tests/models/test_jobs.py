"""The job protocol: run_job drives, sub_job composes, closing cancels."""

from __future__ import annotations

from slidescope.models.jobs import Progress, run_job, sub_job


def counting(n: int, cleaned: list[str], metrics: bool = False):
    try:
        for i in range(n):
            yield Progress(i + 1, n, f"step {i + 1}", {"loss": float(i)} if metrics else {})
        return "result"
    finally:
        cleaned.append("closed")


def test_run_job_returns_the_result_and_reports_every_step() -> None:
    steps: list[Progress] = []
    cleaned: list[str] = []
    assert run_job(counting(3, cleaned), on_progress=steps.append) == "result"
    assert [s.done for s in steps] == [1, 2, 3]
    assert cleaned == ["closed"]


def test_sub_job_offsets_clamps_and_keeps_metrics() -> None:
    cleaned: list[str] = []

    def outer():
        first = yield from sub_job(counting(3, cleaned, metrics=True), 0, 5, "a: ")
        second = yield from sub_job(counting(3, cleaned, metrics=True), 3, 5, "b: ")
        return first, second

    steps: list[Progress] = []
    assert run_job(outer(), steps.append) == ("result", "result")
    assert [s.done for s in steps] == [1, 2, 3, 4, 5, 5]
    assert steps[0].what == "a: step 1"
    assert steps[-1].metrics == {"loss": 2.0}
    assert cleaned == ["closed", "closed"]


def test_sub_job_in_other_units_shows_the_inner_count() -> None:
    steps = list(sub_job(counting(2, []), 4, 9, "slide 5: ", same_units=False))
    assert [s.done for s in steps] == [4, 4]
    assert steps[1].what == "slide 5: step 2 2/2"


def test_closing_the_outer_job_closes_the_inner_one() -> None:
    cleaned: list[str] = []
    job = sub_job(counting(5, cleaned), 0, 5)
    next(job)
    job.close()
    assert cleaned == ["closed"]
