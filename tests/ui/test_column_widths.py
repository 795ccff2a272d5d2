"""Long names wrap in the side columns: no label or picker widens a column by itself.

The user may widen a column by its edge (up to twice its width, docks.MAX_WIDEN), so a
widget whose minimum width is a long model or file name would push the canvas aside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from slidescope.app.ui.docks import LEFT_WIDTH, RIGHT_WIDTH
from slidescope.app.ui.widgets.wrapping import BREAK, breakable

LONG = "tcga_brca_ductal_carcinoma_abmil_builtin_v3_finetuned_final.safetensors"


def test_breakable_adds_breaks_after_separators_and_nothing_else() -> None:
    assert breakable("a_b-c.d/e\\f") == f"a_{BREAK}b-{BREAK}c.{BREAK}d/{BREAK}e\\{BREAK}f"
    assert breakable("plain words") == "plain words"
    assert breakable(LONG).replace(BREAK, "") == LONG


def test_long_model_names_wrap_in_the_right_column(qtbot) -> None:
    from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
    from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
    from slidescope.app.ui.widgets.train_dock import TrainDock

    dock = AnalysisDock()
    qtbot.addWidget(dock)
    dock.set_checkpoint(Path("/models") / LONG)
    assert dock.checkpoint_label.minimumSizeHint().width() < RIGHT_WIDTH
    assert dock.checkpoint_label.toolTip() == f"/models/{LONG}"  # whole, without breaks

    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_prediction(["lesion", "normal"], np.array([0.9, 0.1]), f"315 patches ({LONG})")
    assert panel.headline.minimumSizeHint().width() < RIGHT_WIDTH
    assert "<b>lesion</b>" in panel.headline.text()  # the markup is left whole

    train = TrainDock()
    qtbot.addWidget(train)
    train.set_models([(LONG, LONG)], LONG)
    assert train.model_picker.minimumSizeHint().width() < RIGHT_WIDTH


def test_slide_names_wrap_whole_in_the_train_dock(qtbot) -> None:
    """Slide names share long prefixes (TCGA-A1-A0SB-01Z-00-DX1, -DX2): elided, they could
    not be told apart; they wrap instead, with the slide's label and regions below."""
    from slidescope.app.ui.widgets.train_dock import SlideRow, TrainDock

    train = TrainDock()
    qtbot.addWidget(train)
    train.resize(RIGHT_WIDTH, 900)
    train.show()
    names = [f"TCGA-A1-A0SB-01Z-00-DX{i}.{LONG}" for i in (1, 2)]
    train.set_slides([SlideRow(names[0], "tumor", 1), SlideRow(names[1], None, 0)])
    table = train.slides_table
    assert table.minimumSizeHint().width() < RIGHT_WIDTH
    first, second = table.item(0, 0), table.item(1, 0)
    assert first.text().replace(BREAK, "") == f"{names[0]}\ntumor · 1 region"
    assert second.text().replace(BREAK, "") == f"{names[1]}\nno label · 0 regions"
    assert first.toolTip() == names[0]
    assert train.ticked() == [names[0]]  # the name itself, without breaks
    # the row grows to show the whole wrapped name: several lines, not one elided
    line = table.fontMetrics().lineSpacing()
    qtbot.waitUntil(lambda: table.rowHeight(0) >= 4 * line)
    assert table.horizontalScrollBar().maximum() == 0


def test_a_long_path_wraps_in_the_slide_info_column(qtbot, tmp_path) -> None:
    from slidescope.app.slides import open_slide
    from slidescope.app.ui.widgets.slide_info import SlideInfo
    from ui_slides import synthetic_levels, write_pyramid_tiff

    path = tmp_path / "a_folder_with_a_long_name" / f"{LONG}.tif"
    path.parent.mkdir()
    write_pyramid_tiff(path, synthetic_levels(512, 384, 1, seed=1), mpp=0.25)
    info = SlideInfo()
    qtbot.addWidget(info)
    with open_slide(path) as slide:
        info.show_slide(slide)
    assert info.minimumSizeHint().width() < LEFT_WIDTH
    assert info.fields["File"].toolTip() == str(path)
