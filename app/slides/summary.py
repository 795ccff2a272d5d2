"""What a slide is, in one place: the facts ``slidescope info`` prints and the window's
Slide info panel shows (format, size, resolution, physical size, levels, images, vendor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slidescope.app.slides.slide import Slide

#: vendor properties worth showing when a file has them
VENDOR_KEYS = ("openslide.vendor", "openslide.objective-power", "aperio.AppMag", "aperio.Date")


@dataclass(frozen=True)
class SlideSummary:
    """The facts about one open slide, as plain values."""

    path: str
    slide_id: str
    format: str
    dimensions: tuple[int, int]
    mpp: tuple[float, float] | None
    level_dimensions: list[tuple[int, int]]
    downsamples: list[float]
    associated_images: dict[str, list[int] | None] = field(default_factory=dict)
    vendor: dict[str, str] = field(default_factory=dict)

    @property
    def physical_size_mm(self) -> tuple[float, float] | None:
        """Level-0 width and height in millimetres, None without a resolution."""
        if self.mpp is None:
            return None
        return self.dimensions[0] * self.mpp[0] / 1000, self.dimensions[1] * self.mpp[1] / 1000

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``slidescope info --json``)."""
        return {
            "path": self.path,
            "slide_id": self.slide_id,
            "format": self.format,
            "dimensions": list(self.dimensions),
            "mpp": list(self.mpp) if self.mpp else None,
            "level_count": len(self.level_dimensions),
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "downsamples": list(self.downsamples),
            "associated_images": self.associated_images,
            "vendor": self.vendor,
        }

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` rows: the same words on the terminal and in the window."""
        width, height = self.dimensions
        size_mm = self.physical_size_mm
        rows = [
            ("Slide", self.slide_id),
            ("File", self.path),
            ("Format", self.format),
            ("Size", f"{width} x {height} px (level 0)"),
            (
                "Resolution",
                f"{self.mpp[0]:.4g} x {self.mpp[1]:.4g} µm/px"
                if self.mpp
                else "unknown: the file does not say (pass --slide-mpp)",
            ),
            (
                "Physical size",
                f"{size_mm[0]:.2f} x {size_mm[1]:.2f} mm" if size_mm else "unknown",
            ),
            ("Levels", str(len(self.level_dimensions))),
        ]
        for i, ((w, h), downsample) in enumerate(zip(self.level_dimensions, self.downsamples)):
            rows.append((f"level {i}", f"{w} x {h} px, downsample {downsample:.4g}"))
        images = [
            name + (f" {size[0]} x {size[1]} px" if size else "")
            for name, size in self.associated_images.items()
        ]
        rows.append(("Associated images", ", ".join(images) or "none"))
        rows.extend((key.split(".", 1)[1], value) for key, value in self.vendor.items())
        return rows

    def as_text(self) -> str:
        """The rows as lines of text."""
        return "\n".join(f"{label}: {text}" for label, text in self.rows())


def summarize_slide(slide: Slide) -> SlideSummary:
    """The :class:`SlideSummary` of an open slide."""
    properties = slide.properties
    associated: dict[str, list[int] | None] = {}
    for name in slide.associated_images:
        width = properties.get(f"openslide.associated.{name}.width")
        height = properties.get(f"openslide.associated.{name}.height")
        associated[name] = [int(width), int(height)] if width and height else None
    mpp = slide.mpp
    return SlideSummary(
        path=str(slide.path),
        slide_id=slide.identity.slide_id,
        format=str(slide.format),
        dimensions=(int(slide.dimensions[0]), int(slide.dimensions[1])),
        mpp=(float(mpp[0]), float(mpp[1])) if mpp else None,
        level_dimensions=[(int(w), int(h)) for w, h in slide.level_dimensions],
        downsamples=[float(d) for d in slide.downsamples],
        associated_images=associated,
        vendor={key: str(properties[key]) for key in VENDOR_KEYS if key in properties},
    )
