"""A synthetic analysed slide for the export writers' tests."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.slides.slide import SlideIdentity


def make_analysis(
    rows: int = 12, cols: int = 16, patch: int = 256, seed: int = 0
) -> SlideAnalysis:
    """A slide of ``cols x rows`` patches (plus a margin), scores peaking at one spot."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    keep = rng.random(r.size) > 0.1  # some background cells without a patch
    r, c = r.ravel()[keep], c.ravel()[keep]
    coords = np.stack([(c + 1) * patch, (r + 2) * patch], axis=1).astype(np.int64)
    peak = np.exp(-((r - rows / 2) ** 2 + (c - cols / 3) ** 2) / 8.0)
    attention = (peak / peak.sum()).astype(np.float32)
    tumour = (0.1 + 0.8 * peak).astype(np.float32)
    masked = np.zeros(r.size, bool)
    masked[np.argsort(-attention)[: r.size // 10]] = True
    hard = np.where(masked, 0.0, rng.random(r.size)).astype(np.float32)
    hard /= hard.sum()
    return SlideAnalysis(
        identity=SlideIdentity(
            "synthetic", "abc123", (cols + 3) * patch, (rows + 3) * patch, (0.5, 0.5)
        ),
        coords=coords,
        patch_size_level0=patch,
        class_names=["normal", "tumour"],
        probabilities=np.array([0.2, 0.8], np.float32),
        attention=attention,
        instance_probs=np.stack([1 - tumour, tumour], axis=1),
        masked=masked,
        hard_attention=hard,
        mask_ratio=0.1,
        checkpoint_path="model.safetensors",
        checkpoint_hash="0" * 64,
        extractor="builtin",
        arch="abmil",
    )


@pytest.fixture
def analysis() -> SlideAnalysis:
    return make_analysis()


@pytest.fixture
def thumbnail(analysis: SlideAnalysis) -> np.ndarray:
    w, h = analysis.identity.width // 16, analysis.identity.height // 16
    return np.full((h, w, 3), 230, np.uint8)


def write_tissue_slide(path, seed: int = 0):
    """A 1280 x 896 px TIFF at 0.5 um/px with a pink tissue piece (a quick real slide)."""
    import tifffile

    rng = np.random.default_rng(seed)
    h, w = 896, 1280
    image = np.full((h, w, 3), 244, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    noise = rng.integers(0, 50, (h, w, 1))
    piece = (xx - 600) ** 2 / 450**2 + (yy - 430) ** 2 / 320**2 < 1
    image[piece] = (np.array([205, 120, 175]) - noise[piece]).clip(0, 255)
    tifffile.imwrite(
        path, image, tile=(256, 256), photometric="rgb", compression="zlib",
        resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER",
    )  # fmt: skip
    return path


def write_abmil_checkpoint(path, threshold: float | None = None):
    """A seeded ABMIL checkpoint on builtin features; ``threshold`` is its prediction rule."""
    import torch
    from slidescope.models.checkpoints import CheckpointMeta, save_checkpoint
    from slidescope.models.extractors.builtin import BUILTIN_DIM
    from slidescope.models.mil.registry import create_model

    torch.manual_seed(0)
    model = create_model("abmil", BUILTIN_DIM, 2)
    meta = CheckpointMeta.for_model(
        model, class_names=["normal", "tumour"], extractor="builtin", patch_size=128,
        target_mpp=0.5, training={"mask_ratio_high": 0.2},
    )  # fmt: skip
    meta.threshold = threshold
    return save_checkpoint(path, model, meta)


@pytest.fixture
def abmil_checkpoint_writer():
    """:func:`write_abmil_checkpoint`, for tests that need checkpoints of their own."""
    return write_abmil_checkpoint


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, one_torch_thread):
    """Two small slides, one corrupt file and a checkpoint, in one folder."""
    folder = tmp_path_factory.mktemp("cohort")
    write_tissue_slide(folder / "a.tiff", 0)
    write_tissue_slide(folder / "b.tiff", 1)
    (folder / "broken.svs").write_bytes(b"not a slide at all")
    checkpoint = write_abmil_checkpoint(folder / "model.safetensors")
    return folder, checkpoint
