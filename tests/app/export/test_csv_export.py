"""CSV of patch scores: columns, values and the provenance beside it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from slidescope.app.analysis.heatmaps import DisplayChoices
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.export.csv_export import read_scores_csv, write_scores_csv
from slidescope.app.export.provenance import export_metadata


def test_csv_columns_and_values(tmp_path, analysis: SlideAnalysis) -> None:
    meta = export_metadata(analysis, DisplayChoices(normalisation="rank", smooth=True))
    path = write_scores_csv(tmp_path / "s.csv", analysis, meta)
    header = path.read_text().splitlines()[0]
    assert header == "x,y,size,attention,hard_attention,masked,prob_normal,prob_tumour"
    # any plain CSV reader takes the file as it is
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == analysis.n_patches
    assert float(rows[0]["attention"]) == pytest.approx(float(analysis.attention[0]), rel=1e-5)
    stored, columns = read_scores_csv(path)
    assert stored["slide"]["slide_id"] == "synthetic"
    assert stored["display"]["smooth"] is True
    np.testing.assert_array_equal(columns["x"], analysis.coords[:, 0])
    np.testing.assert_array_equal(columns["y"], analysis.coords[:, 1])
    assert (columns["size"] == 256).all()
    np.testing.assert_allclose(columns["attention"], analysis.attention, rtol=1e-5)
    np.testing.assert_array_equal(columns["masked"].astype(bool), analysis.masked)
    np.testing.assert_allclose(columns["prob_tumour"], analysis.prob("tumour"), rtol=1e-5)


def test_csv_of_a_slide_without_tissue(tmp_path, analysis: SlideAnalysis) -> None:
    from slidescope.app.analysis.slide_analysis import empty_analysis

    empty = empty_analysis(analysis.identity, ["a", "b"], 256, mask_ratio=0.1)
    path = write_scores_csv(tmp_path / "e.csv", empty, {})
    assert (
        path.read_text().splitlines()[-1]
        == "x,y,size,attention,hard_attention,masked,prob_a,prob_b"
    )
