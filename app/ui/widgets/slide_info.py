"""The slide-info panel: what the file is, its size, resolution and pyramid."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QFormLayout, QLabel, QWidget

_VENDOR_KEYS = ("openslide.vendor", "openslide.objective-power", "aperio.AppMag", "aperio.Date")


class SlideInfo(QWidget):
    """Name, format, level-0 size, mpp and physical size, levels, vendor metadata."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-slide-info")
        self._form = QFormLayout(self)
        self.fields: dict[str, QLabel] = {}
        for name in ("Slide", "File", "Format", "Size", "Resolution", "Physical size", "Levels"):
            label = QLabel("-")
            label.setWordWrap(True)
            label.setTextInteractionFlags(label.textInteractionFlags().TextSelectableByMouse)
            self.fields[name] = label
            self._form.addRow(name, label)
        self._extra: list[QLabel] = []  # vendor rows of the slide shown now

    def show_slide(self, slide: Any | None) -> None:
        """Fill the panel from an open :class:`~slidescope.app.slides.slide.Slide` (None clears)."""
        for label in self._extra:
            self._form.removeRow(label)
        self._extra = []
        if slide is None:
            for label in self.fields.values():
                label.setText("-")
            return
        w, h = slide.dimensions
        mpp = slide.mpp
        self.fields["Slide"].setText(slide.identity.slide_id)
        self.fields["File"].setText(str(slide.path))
        self.fields["Format"].setText(str(slide.format))
        self.fields["Size"].setText(f"{w:,} x {h:,} px")
        if mpp:
            self.fields["Resolution"].setText(f"{mpp[0]:.4g} x {mpp[1]:.4g} µm/px")
            self.fields["Physical size"].setText(
                f"{w * mpp[0] / 1000:.2f} x {h * mpp[1] / 1000:.2f} mm"
            )
        else:
            self.fields["Resolution"].setText("unknown (no mpp in the file)")
            self.fields["Physical size"].setText("unknown")
        self.fields["Levels"].setText(
            ", ".join(
                f"{lw}x{lh} (/{d:.3g})"
                for (lw, lh), d in zip(slide.level_dimensions, slide.downsamples)
            )
        )
        properties = slide.properties
        for key in _VENDOR_KEYS:
            if key in properties:
                label = QLabel(str(properties[key]))
                self._form.addRow(key.split(".", 1)[1], label)
                self._extra.append(label)
