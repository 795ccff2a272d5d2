"""Demo slides of both lesion kinds, their outlines and features, for the fine-tune benchmark.

Kept in a folder between runs (``SLIDESCOPE_FINETUNE_BENCH`` names it; every step skips
what is already there). Seeds are chosen by the lesion rule of the demo generator
(``planned_lesion_count``), without drawing slides:

- fine-tuning set: 4 glandular and 2 solid slides with lesions, 4 without (10 slides);
- test set, unseen: 6 glandular and 6 solid slides with lesions and 4 without, so each
  kind is measured on 10 slides (6 with lesions, 4 without; the lesion-free slides of the
  two kinds are the same slides: without a lesion the kind does not show).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slidescope.app.analysis.checkpoint_features import geometry_name
from slidescope.app.analysis.extract import ExtractConfig, extract_features
from slidescope.app.demo.generate import generate_demo_slide, lesions_path_for
from slidescope.app.demo.layout import planned_lesion_count
from slidescope.app.jobs import run_job

SIZE = 6144
MPP = 0.25
PATCH_PX, TARGET_MPP = 128, 0.5
#: the analysis cache's feature folder for these settings (as the window's cache names it)
FEATURES = "features/" + geometry_name(
    ExtractConfig(extractor="builtin", target_mpp=TARGET_MPP, patch_px=PATCH_PX)
)
TRAIN_COUNTS = {"glandular": 4, "solid": 2, "normal": 4}
TEST_COUNTS = {"glandular": 6, "solid": 6, "normal": 4}


@dataclass(frozen=True)
class BenchSlide:
    """One generated slide: its file, outlines, kind and slide label."""

    path: Path
    kind: str  # glandular, solid or normal
    label: str  # lesion or normal

    @property
    def slide_id(self) -> str:
        return self.path.stem

    @property
    def outlines(self) -> Path:
        return lesions_path_for(self.path)


def _pick(first_seed: int, counts: dict[str, int]) -> list[tuple[int, str]]:
    wanted = dict(counts)
    picked: list[tuple[int, str]] = []
    seed = first_seed
    while any(wanted.values()):
        has_lesion = planned_lesion_count(seed) > 0
        for kind in ("glandular", "solid") if has_lesion else ("normal",):
            if wanted[kind] > 0:
                wanted[kind] -= 1
                picked.append((seed, kind))
                break
        seed += 1
    return picked


def plan(folder: Path) -> tuple[list[BenchSlide], list[BenchSlide]]:
    """The fine-tuning and test slides (not yet written)."""
    slides = folder / "slides"

    def make(pairs: list[tuple[int, str]]) -> list[BenchSlide]:
        return [
            BenchSlide(
                slides / f"{kind}_{seed}.tiff", kind, "normal" if kind == "normal" else "lesion"
            )
            for seed, kind in pairs
        ]

    return make(_pick(5000, TRAIN_COUNTS)), make(_pick(6000, TEST_COUNTS))


def prepare(folder: Path) -> tuple[list[BenchSlide], list[BenchSlide]]:
    """Write the slides and extract their features into ``folder/cache`` (skipping done ones)."""
    train, test = plan(folder)
    (folder / "slides").mkdir(parents=True, exist_ok=True)
    config = ExtractConfig(
        extractor="builtin", target_mpp=TARGET_MPP, patch_px=PATCH_PX, device="cpu", workers=1
    )
    for slide in train + test:
        if not slide.path.exists():
            seed = int(slide.path.stem.split("_")[1])
            kind = "glandular" if slide.kind == "glandular" else "solid"
            run_job(generate_demo_slide(slide.path, SIZE, SIZE, seed, MPP, lesion_kind=kind))
        if not (folder / "cache" / FEATURES / f"{slide.slide_id}.h5").exists():
            run_job(extract_features(slide.path, folder / "cache" / FEATURES, config))
    return train, test


if __name__ == "__main__":
    import sys

    prepare(Path(sys.argv[1]))
