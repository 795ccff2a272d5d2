"""``slidescope demo``: the demo slide, opened, analysed with the bundled model, heatmaps shown.

Everything slow runs in the background with a progress bar: the window is up at once, the
demo slide is generated on first use (reused afterwards), added to a project in the output
folder (whose caches keep the analysis, so a second demo shows the heatmaps at once), shown,
and analysed with ``resources/demo_model.safetensors``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from slidescope.app.project.project import PROJECT_FILE, Project
from slidescope.app.ui.demo_slide import ensure_demo_slide

#: the demo model was trained on 10,240 x 8,192 slides at 0.25 µm/px of other seeds;
#: seed 7 is one it never saw (resources/demo_model.json, "unseen_seeds_for_demo_and_tests")
DEMO_WIDTH, DEMO_HEIGHT, DEMO_SEED = 10_240, 8_192, 7
DEMO_KINDS = ("attention", "hard")


def start_demo(
    window: Any,
    out_dir: str | Path,
    seed: int = DEMO_SEED,
    size: tuple[int, int] = (DEMO_WIDTH, DEMO_HEIGHT),
) -> Any:
    """Drive a :class:`~slidescope.app.ui.main_window.SlideScopeWindow` through the demo.

    Returns the worker generating (or finding) the demo slide.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "demo-project"
    project = Project.open(folder) if (folder / PROJECT_FILE).exists() else Project.create(folder)
    window.session.set_project(project)
    for kind, box in window.analysis_dock.kind_boxes.items():
        box.setChecked(kind in DEMO_KINDS)

    # weak: these closures outlive the demo in Qt connections and must not keep the window
    ref = weakref.ref(window)

    def slide_ready(path: Path) -> None:
        win = ref()
        if win is None:
            return
        win.session.project.add_slide(path)
        win.session.project.save()
        win.session.listeners.append(analyse_when_shown)
        win.open_slides([path])

    def analyse_when_shown(shown: Any) -> None:
        win = ref()
        if shown is None or win is None:
            return
        win.session.listeners.remove(analyse_when_shown)
        entry = win.session.project.find(shown.path)
        state = entry.analyses.get(win.analysis.key, {}).get("state") if entry else None
        if state not in ("done", "running"):  # else the project's cache is being shown
            win.analysis.run_slide()

    return window.session.run_in_background(
        ensure_demo_slide(out / "slides", size[0], size[1], seed),
        "Demo slide (first time: about a minute)",
        on_done=slide_ready,
    )


def run_demo(out_dir: str | Path, seed: int = DEMO_SEED, event_loop: bool = True) -> int:
    """Open the window and run the demo in it; returns when the window closes."""
    import os

    os.environ.setdefault("NAPARI_ASYNC", "1")
    import napari
    from slidescope.app.ui.main_window import SlideScopeWindow

    window = SlideScopeWindow()
    start_demo(window, out_dir, seed)
    if event_loop:
        napari.run()
    return 0
