"""The heatmap layers on the canvas, changed in place: what a display change costs is a frame.

A :class:`HeatmapView` keeps one napari image layer per heatmap it shows. Asked to show a set
of heatmaps with some display choices, it adds the layers that are missing, removes those no
longer wanted, and updates the others in place: opacity and colormap (threshold included) are
layer properties; normalisation and smoothing replace the layer's data. It never touches a
layer's visibility: a layer the user hid stays hidden. The colour bar on the canvas follows
the top visible layer.
"""

from __future__ import annotations

from typing import Any

from slidescope.app.analysis.heatmaps import (
    NORMALISATION_NAMES,
    DisplayChoices,
    HeatmapGrid,
    kind_scores,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.heatmap_layers import (
    LAYER_KINDS,
    HeatmapLayer,
    heatmap_layers,
    kind_grid,
    layer_colors,
    layer_values,
    legend_stops,
)
from slidescope.app.display.placement import SlideSpace, shapes_placement
from slidescope.app.ui.napari_access import layers_changed_together
from slidescope.app.ui.widgets.canvas_overlays import CanvasOverlays, LegendEntry

TITLES = dict(LAYER_KINDS)
TARGET_LAYER = "target patch"
#: value labels under each colour key: low, middle, high (a compact bar has room for three)
LEGEND_STOPS = 3


def napari_colormap(colors: Any, name: str) -> Any:
    from napari.utils.colormaps import Colormap

    return Colormap(colors=colors, name=name, interpolation="linear")


class HeatmapView:
    """Heatmap layers of one analysis in one viewer.

    Parameters
    ----------
    viewer : napari.Viewer
    overlays : CanvasOverlays, optional
        Where the colour bar goes.
    """

    def __init__(self, viewer: Any, overlays: CanvasOverlays | None = None) -> None:
        self.viewer = viewer
        self.overlays = overlays
        self.layers: dict[str, Any] = {}
        self.specs: dict[str, HeatmapLayer] = {}
        self.displays: dict[str, DisplayChoices] = {}
        self.target: Any = None
        # the keys follow the layers' order, also when the user drags them in the layer list
        viewer.layers.events.reordered.connect(self._reordered)

    def _reordered(self, _event: Any = None) -> None:
        if self.layers:
            self.refresh_legend()

    @property
    def grids(self) -> dict[str, HeatmapGrid]:
        return {name: spec.grid for name, spec in self.specs.items()}

    def sync(
        self,
        analysis: SlideAnalysis,
        space: SlideSpace,
        kinds: list[str],
        class_name: str | None,
        display: DisplayChoices,
    ) -> None:
        """Show the heatmaps of ``kinds`` with ``display``, changing as little as possible."""
        wanted: list[tuple[str, str]] = []
        for kind in kinds:
            for name in kind_scores(analysis, kind):
                if kind == "prob" and class_name is not None and name != f"prob_{class_name}":
                    continue
                wanted.append((kind, name))
        names = {name for _, name in wanted}
        for name in [n for n in self.layers if n not in names]:
            self._remove(name)
        for kind, name in wanted:
            if name in self.layers and self.layers[name] in self.viewer.layers:
                self._update(analysis, name, kind, display)
            else:
                self._add(analysis, space, kind, name, display)
        self._order([name for _, name in wanted])
        self.refresh_legend()

    def _add(
        self,
        analysis: SlideAnalysis,
        space: SlideSpace,
        kind: str,
        name: str,
        display: DisplayChoices,
    ) -> None:
        class_name = name[len("prob_") :] if kind == "prob" else None
        spec = next(
            s for s in heatmap_layers(analysis, kind, display, space, class_name) if s.name == name
        )
        layer = self.viewer.add_image(
            spec.data,
            colormap=napari_colormap(spec.colors, spec.colormap_name),
            contrast_limits=spec.contrast_limits,
            **spec.kwargs,
        )
        layer.events.visible.connect(lambda _event: self.refresh_legend())
        self.layers[name], self.specs[name], self.displays[name] = layer, spec, display

    def _update(
        self, analysis: SlideAnalysis, name: str, kind: str, display: DisplayChoices
    ) -> None:
        layer, spec, old = self.layers[name], self.specs[name], self.displays[name]
        if display == old:
            return
        if display.opacity != old.opacity:
            layer.opacity = display.opacity
        data_changed = (
            display.normalisation != old.normalisation
            or display.smooth != old.smooth
            or display.sigma_cells != old.sigma_cells
        )
        grid, limits, data = spec.grid, spec.contrast_limits, spec.data
        if data_changed:
            grid = kind_grid(analysis, kind, kind_scores(analysis, kind)[name], display)
            data, limits = layer_values(grid, binary=kind == "masked")
        colors, cmap_name = layer_colors(kind, display, limits)
        if data_changed:
            layer.data = data
            layer.contrast_limits = limits
        if cmap_name != spec.colormap_name:
            layer.colormap = napari_colormap(colors, cmap_name)
        self.specs[name] = HeatmapLayer(
            name, kind, grid, data, limits, colors, cmap_name, spec.kwargs
        )
        self.displays[name] = display

    def _order(self, names: list[str]) -> None:
        """Stack the heatmaps in kind order right above the slide (annotations stay on top)."""
        layers = self.viewer.layers
        for offset, name in enumerate(names):
            layer = self.layers.get(name)
            if layer is not None and layer in layers:
                index = layers.index(layer)
                if index != 1 + offset and len(layers) > 1 + offset:
                    layers.move(index, 1 + offset)

    def _remove(self, name: str) -> None:
        layer = self.layers.pop(name, None)
        self.specs.pop(name, None)
        self.displays.pop(name, None)
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def clear(self) -> None:
        if self.layers or self.target is not None:
            # one scene-graph update for them all (napari's costs a gc.collect(), even
            # for a batch that removed nothing: hence only when there is something)
            with layers_changed_together(self.viewer):
                for name in list(self.layers):
                    self._remove(name)
                self.clear_target()
        self.refresh_legend()

    def refresh_legend(self) -> None:
        """The colour keys of the visible heatmaps, top layer first (none when none is)."""
        if self.overlays is None:
            return
        try:
            self.overlays.colorbar.show_legends(self.legend_entries())
        except RuntimeError:  # the canvas (and its overlays) is already gone: nothing to show
            self.overlays = None

    def legend_entries(self) -> list[LegendEntry]:
        """A key for each visible heatmap, top layer first, titled with its normalisation."""
        entries = []
        shown = [(n, layer) for n, layer in self.layers.items() if layer in self.viewer.layers]
        shown.sort(key=lambda item: self.viewer.layers.index(item[1]), reverse=True)
        for name, layer in shown:
            if not layer.visible:
                continue
            spec = self.specs[name]
            title = TITLES.get(spec.kind, spec.kind)
            if spec.kind == "prob":
                title = f"p({name[len('prob_') :]})"
            if spec.kind != "masked":
                title = f"{title} · {NORMALISATION_NAMES[self.displays[name].normalisation]}"
            entries.append(LegendEntry(title, spec.colors, legend_stops(spec, LEGEND_STOPS)))
        return entries

    # -- the target patch ------------------------------------------------------------------

    def outline(self, space: SlideSpace, x: float, y: float, size: float) -> None:
        """Outline the level-0 square ``(x, y, size)`` on the canvas (one rectangle)."""
        import numpy as np

        rect = np.array([[y, x], [y + size, x + size]], dtype=float)
        if self.target is None or self.target not in self.viewer.layers:
            self.target = self.viewer.add_shapes(
                [rect],
                shape_type="rectangle",
                edge_color="#00e5ff",
                face_color="transparent",
                edge_width=max(size / 24, 2.0),
                name=TARGET_LAYER,
                **shapes_placement(space).kwargs,
            )
        else:
            self.target.data = [rect]
            self.target.shape_type = ["rectangle"]

    def clear_target(self) -> None:
        if self.target is not None and self.target in self.viewer.layers:
            self.viewer.layers.remove(self.target)
        self.target = None
