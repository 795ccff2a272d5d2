"""Batch export: every output per slide, resumable, failures recorded, exit status, Dask."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from slidescope.app.cli import main
from slidescope.app.export.batch import SlideListError, expand_slides


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open() as f:
        return {row["slide_id"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_cli_exports_a_cohort_records_failures_and_resumes(tmp_path: Path, cohort, capsys) -> None:
    folder, checkpoint = cohort
    out = tmp_path / "out"
    args = [
        "export", str(folder / "a.tiff"), str(folder / "broken.svs"), "--checkpoint", str(checkpoint),
        "--out", str(out), "--workers", "0", "--threshold", "0.5", "--smooth", "--normalise", "rank",
        "--cache", str(folder / "cache"),
    ]  # fmt: skip
    assert main(args) == 1  # one slide failed
    rows = summary_rows(out)
    assert rows["a"]["status"] == "done"
    assert rows["broken"]["status"] == "failed"
    assert "broken.svs" in rows["broken"]["error"]
    names = sorted(p.name for p in (out / "a").iterdir())
    for layer in ("attention", "hard_attention", "masked", "prob_normal", "prob_tumour"):
        assert f"a.{layer}.png" in names
        assert f"a.{layer}.ome.tif" in names
    assert {"a.geojson", "a.scores.csv", "a.done.json"} <= set(names)
    done = json.loads((out / "a" / "a.done.json").read_text())
    assert done["display"]["normalisation"] == "rank"
    assert done["display"]["smooth"] is True
    assert done["slide"]["mpp"] == [0.5, 0.5]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {
        "done": 1, "skipped": 0, "no tissue": 0, "failed": 1, "not run": 0, "retried": 0,
    }  # fmt: skip
    assert "broken.svs" in capsys.readouterr().err

    # a second run skips the finished slide, and still reports the broken one
    (out / "a" / "a.attention.png").unlink()  # proves nothing is rewritten
    assert main(args) == 1
    assert summary_rows(out)["a"]["status"] == "skipped"
    assert not (out / "a" / "a.attention.png").exists()

    # other display choices are another export: done again
    assert main([*args[:-2], "--cache", str(folder / "cache"), "--kinds", "attention"]) == 1
    assert summary_rows(out)["a"]["status"] == "done"
    assert (out / "a" / "a.attention.png").exists()


def test_folder_and_csv_lists(tmp_path: Path, cohort) -> None:
    folder, _ = cohort
    listed = tmp_path / "slides.csv"
    listed.write_text(f"slide,label\n{folder / 'a.tiff'},x\nrelative.tiff,y\n")
    assert expand_slides([listed]) == [folder / "a.tiff", tmp_path / "relative.tiff"]
    found = expand_slides([folder])
    assert [p.name for p in found] == ["a.tiff", "b.tiff", "broken.svs"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SlideListError, match="no slide files"):
        expand_slides([empty])


def test_cli_refuses_bad_options_before_any_slide(tmp_path: Path, cohort, capsys) -> None:
    folder, checkpoint = cohort
    base = [
        "export",
        str(folder / "a.tiff"),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*base, "--kinds", "attention,saliency"]) == 2
    assert "saliency" in capsys.readouterr().err
    assert main([*base, "--colormap", "no-such-map"]) == 2
    missing = [
        "export",
        str(folder / "a.tiff"),
        "--checkpoint",
        str(tmp_path / "nope.safetensors"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(missing) == 2
    assert "no such checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_export_on_a_local_dask_cluster(tmp_path: Path, cohort) -> None:
    folder, checkpoint = cohort
    out = tmp_path / "out"
    status = main([
        "export", str(folder / "a.tiff"), str(folder / "b.tiff"), str(folder / "broken.svs"),
        "--checkpoint", str(checkpoint), "--out", str(out), "--workers", "1", "--kinds", "attention",
        "--overlay", "ome-zarr", "--cache", str(tmp_path / "cache"),
    ])  # fmt: skip
    assert status == 1
    rows = summary_rows(out)
    assert [rows[s]["status"] for s in ("a", "b", "broken")] == ["done", "done", "failed"]
    assert (out / "b" / "b.attention.ome.zarr").is_dir()
