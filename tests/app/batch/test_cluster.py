"""A real Dask cluster on loopback: extract + export of a demo cohort, one worker killed.

``dask scheduler`` and two ``dask worker`` processes are started here (free ports, stopped
at the end); one worker is SIGKILLed while it works on a slide. Every slide's outputs must
exist once and equal those of a serial run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from slidescope.app.cli import main

pytestmark = pytest.mark.slow

SLIDES = ("s1", "s2", "s3", "s4")
PATCH = ["--patch", "128", "--target-mpp", "0.5", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition, timeout: float, what: str) -> None:
    """Check ``condition`` until it holds (a bounded wait on a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        tick.wait(0.05)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[list[Path], Path, Path]:
    """Four demo slides (one drawn, copied under four names) and a model that fits them."""
    import torch
    from export_fixtures import export_conftest
    from slidescope.app.demo.generate import generate_demo_slide
    from slidescope.app.jobs import run_job

    write_abmil_checkpoint = export_conftest().write_abmil_checkpoint

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("demo_cohort")
    drawn = run_job(generate_demo_slide(folder / "drawn.tiff", 2048, 2048, seed=1))
    slides = []
    for name in SLIDES:
        slides.append(folder / f"{name}.tiff")
        shutil.copyfile(drawn.path, slides[-1])
    drawn.path.unlink()
    drawn.lesions_path.unlink()
    # a slide this small is too small for the tissue detector: the ROI says where to look
    roi = folder / "whole.geojson"
    square = [[[0, 0], [2048, 0], [2048, 2048], [0, 2048], [0, 0]]]
    roi.write_text(json.dumps({"type": "Polygon", "coordinates": square}))
    return slides, write_abmil_checkpoint(folder / "model.safetensors"), roi


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers (with nannies, which restart the killed)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}  # fmt: skip
    logs = (tmp_path / "dask.log").open("w")
    python_m = [sys.executable, "-m"]
    processes = [
        subprocess.Popen(
            [*python_m, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env, stdout=logs, stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    for _ in range(2):
        processes.append(
            subprocess.Popen(
                [*python_m, "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                env=env, stdout=logs, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        logs.close()


def features_of(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    found = {}
    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path, "r") as f:
            found[path.stem] = (f["coords"][:], f["features"][:])
    return found


def export_files(out: Path) -> dict[str, set[str]]:
    return {name: {p.name for p in (out / name).iterdir()} for name in SLIDES}


def test_extract_and_export_on_a_cluster_with_a_killed_worker(
    tmp_path: Path, cohort, cluster
) -> None:
    from distributed import Client

    slides, checkpoint, roi = cohort
    names = [str(s) for s in slides]
    extract_options = [*PATCH, "--roi", str(roi), "--roi-mode", "replace"]
    # the serial reference
    ref_features, ref_out = tmp_path / "ref_features", tmp_path / "ref_out"
    assert main(["extract", *names, "--out", str(ref_features), "--workers", "0", *extract_options]) == 0
    export = ["export", *names, "--checkpoint", str(checkpoint), "--kinds", "attention", "--overlay", "none", "--device", "cpu"]  # fmt: skip
    assert (
        main([*export, "--out", str(ref_out), "--features", str(ref_features), "--workers", "0"])
        == 0
    )

    with Client(cluster, timeout="60s") as watcher:
        watcher.wait_for_workers(2, timeout=180)
        features = tmp_path / "features"
        run = subprocess.Popen(
            [sys.executable, "-m", "slidescope.app.cli", "extract", *names, "--out", str(features), "--scheduler", cluster, "--json", *extract_options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        busy: list[str] = []

        def a_worker_is_on_a_slide() -> bool:
            busy.extend(w for w, keys in watcher.processing().items() if keys)
            return bool(busy) or run.poll() is not None

        wait_until(a_worker_is_on_a_slide, 300, "a worker to start a slide")
        assert busy, f"extract ended before any worker was seen at work: {run.communicate()}"
        pid = watcher.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        outcome = json.loads(stdout)
        assert outcome["counts"]["done"] == len(SLIDES), outcome

        watcher.wait_for_workers(2, timeout=180)  # the nanny brought the killed one back
        out = tmp_path / "out"
        assert (
            main([*export, "--out", str(out), "--features", str(features), "--scheduler", cluster])
            == 0
        )

    # every slide once, equal to the serial run's, nothing half-written left behind
    assert sorted(p.name for p in features.iterdir()) == sorted(
        [f"{n}.h5" for n in SLIDES] + ["summary.csv", "summary.json"]
    )
    ours, reference = features_of(features), features_of(ref_features)
    assert ours.keys() == reference.keys() == set(SLIDES)
    for name in SLIDES:
        assert np.array_equal(ours[name][0], reference[name][0])
        np.testing.assert_allclose(ours[name][1], reference[name][1], rtol=1e-5, atol=1e-6)
    assert export_files(out) == export_files(ref_out)
    for name in SLIDES:
        ours_csv = (out / name / f"{name}.scores.csv").read_text()
        assert ours_csv == (ref_out / name / f"{name}.scores.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["done"] == len(SLIDES)
    assert all(s["patches"] == 64 for s in summary["slides"])
