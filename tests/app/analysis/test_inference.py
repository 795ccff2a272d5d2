"""The inference job: slide + checkpoint -> prediction, attention, hard instances, cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from slidescope.app.analysis.inference import NoTeacherError, analyze_slide
from slidescope.app.analysis.results_cache import result_paths
from slidescope.app.jobs import Progress, run_job
from slidescope.models.checkpoints import CheckpointMeta, save_checkpoint
from slidescope.models.devices import DeviceMemoryError
from slidescope.models.errors import CheckpointError
from slidescope.models.extractors.builtin import BUILTIN_DIM
from slidescope.models.mil.registry import create_model

PATCH_PX = 128  # at 0.5 um/px on a 0.5 um/px slide: 128 level-0 px


def write_slide(path: Path, tissue: bool = True) -> Path:
    """A 1536 x 1024 px H&E-like TIFF at 0.5 um/px: a pink piece with a dark purple spot."""
    rng = np.random.default_rng(0)
    h, w = 1024, 1536
    image = np.full((h, w, 3), 244, np.uint8)
    if tissue:
        yy, xx = np.mgrid[0:h, 0:w]
        noise = rng.integers(0, 50, (h, w, 1))
        piece = (xx - 700) ** 2 / 550**2 + (yy - 500) ** 2 / 380**2 < 1
        image[piece] = (np.array([205, 120, 175]) - noise[piece]).clip(0, 255)
        spot = (xx - 600) ** 2 + (yy - 450) ** 2 < 160**2
        image[spot] = (np.array([110, 50, 140]) - noise[spot] // 2).clip(0, 255)
    tifffile.imwrite(
        path, image, tile=(256, 256), photometric="rgb", compression="zlib",
        resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER",
    )  # fmt: skip
    return path


def write_checkpoint(
    path: Path, arch: str, *, teacher: bool = False, in_dim: int = BUILTIN_DIM, **training: object
) -> Path:
    torch.manual_seed(0)
    model = create_model(arch, in_dim, 2)
    meta = CheckpointMeta.for_model(
        model, class_names=["normal", "tumour"], extractor="builtin", patch_size=PATCH_PX,
        target_mpp=0.5, training=dict(training),
    )  # fmt: skip
    return save_checkpoint(
        path, model, meta, teacher=create_model(arch, in_dim, 2) if teacher else None
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> Path:
    folder = tmp_path_factory.mktemp("inference")
    write_slide(folder / "slide.tiff")
    return folder


@pytest.fixture(scope="module")
def first_run(workdir: Path):
    """One full run (tissue, patches, features, model), shared by the tests below."""
    checkpoint = write_checkpoint(workdir / "abmil.safetensors", "abmil", mask_ratio_high=0.2)
    steps: list[Progress] = []
    analysis = run_job(
        analyze_slide(workdir / "slide.tiff", checkpoint, workdir / "cache", device="cpu"),
        steps.append,
    )
    return analysis, steps


@pytest.mark.slow
def test_full_run_gives_scores_for_every_patch(first_run) -> None:
    analysis, steps = first_run
    n = analysis.n_patches
    assert n > 10
    assert analysis.status == "ok"
    assert analysis.identity.slide_id == "slide"
    assert analysis.patch_size_level0 == PATCH_PX
    assert analysis.coords.shape == (n, 2)
    assert analysis.probabilities.shape == (2,)
    assert analysis.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert analysis.predicted_class in ("normal", "tumour")
    assert analysis.attention.shape == (n,)
    assert analysis.attention.sum() == pytest.approx(1.0, abs=1e-4)
    assert analysis.instance_probs.shape == (n, 2)
    # r_h comes from the checkpoint's training settings
    assert analysis.mask_ratio == 0.2
    assert analysis.masked.sum() == int(n * 0.2)
    assert (analysis.hard_attention[analysis.masked] == 0).all()
    assert analysis.hard_attention.sum() == pytest.approx(1.0, abs=1e-4)
    assert analysis.extractor == "builtin"
    assert len(analysis.checkpoint_hash) == 64
    assert any("features" in s.what for s in steps)
    # the patches lie on the tissue piece (centre 700, 500; radii 550, 380)
    centres = analysis.coords + PATCH_PX / 2
    inside = (centres[:, 0] - 700) ** 2 / 600**2 + (centres[:, 1] - 500) ** 2 / 430**2 < 1
    assert inside.all()


def test_second_run_comes_from_the_cache(workdir: Path, first_run) -> None:
    analysis, _ = first_run
    steps: list[Progress] = []
    again = run_job(
        analyze_slide(workdir / "slide.tiff", workdir / "abmil.safetensors", workdir / "cache"),
        steps.append,
    )
    assert any("cache" in s.what for s in steps)
    assert not any("features" in s.what for s in steps)
    np.testing.assert_array_equal(again.coords, analysis.coords)
    np.testing.assert_allclose(again.attention, analysis.attention)
    np.testing.assert_array_equal(again.masked, analysis.masked)
    assert again.probabilities.tolist() == pytest.approx(analysis.probabilities.tolist())


def test_another_mask_ratio_is_computed_again_from_cached_features(
    workdir: Path, first_run
) -> None:
    analysis, _ = first_run
    steps: list[Progress] = []
    other = run_job(
        analyze_slide(
            workdir / "slide.tiff",
            workdir / "abmil.safetensors",
            workdir / "cache",
            mask_ratio=0.5,
        ),
        steps.append,
    )
    assert not any("cache" in s.what or "features" in s.what for s in steps)
    assert other.masked.sum() == int(analysis.n_patches * 0.5)
    np.testing.assert_allclose(other.attention, analysis.attention, rtol=1e-5)


def test_a_bag_too_large_for_the_gpu_runs_on_the_cpu(workdir, first_run, monkeypatch) -> None:
    from slidescope.app.analysis import inference

    real, devices = inference._run_model, []

    def on_a_small_gpu(checkpoint: Path, device: str, *rest: object) -> object:
        devices.append(device)
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.10 GiB. GPU 0")
        return real(checkpoint, device, *rest)

    monkeypatch.setattr(inference, "_run_model", on_a_small_gpu)
    slide, checkpoint = workdir / "slide.tiff", workdir / "abmil.safetensors"
    steps: list[Progress] = []
    analysis = run_job(
        analyze_slide(slide, checkpoint, workdir / "cache", mask_ratio=0.3), steps.append
    )
    assert devices == ["auto", "cpu"]
    n = first_run[0].n_patches
    assert f"slide: GPU memory short for {n} patches: the model runs on the CPU" in [
        s.what for s in steps
    ]
    np.testing.assert_allclose(analysis.attention, first_run[0].attention, rtol=1e-5)
    # a GPU the user asked for by name: a clear error, not a silent move
    message = (
        rf"slide.tiff: the GPU ran out of memory running abmil on the slide's {n} patches "
        r"\(tried to allocate 3.10 gib\); analyse it with --device cpu"
    )
    with pytest.raises(DeviceMemoryError, match=message):
        run_job(analyze_slide(slide, checkpoint, workdir / "cache", device="cuda", mask_ratio=0.4))


@pytest.mark.parametrize("arch", ["abmil_gated", "transmil", "dsmil", "clam_sb", "mean_pool"])
def test_any_registry_model_works(workdir: Path, first_run, arch: str) -> None:
    checkpoint = write_checkpoint(workdir / f"{arch}.safetensors", arch)
    analysis = run_job(analyze_slide(workdir / "slide.tiff", checkpoint, workdir / "cache"))
    n = first_run[0].n_patches
    assert analysis.arch == arch
    assert analysis.attention.shape == (n,)
    assert analysis.instance_probs.shape == (n, 2)
    assert analysis.masked.sum() == int(n * 0.1)  # no r_h in a plain checkpoint: 0.1


def test_teacher_chooses_the_salient_set_by_probability(workdir: Path, first_run) -> None:
    checkpoint = write_checkpoint(
        workdir / "mhim.safetensors",
        "abmil",
        teacher=True,
        mask_ratio_high=0.3,
        mask_score="cls_prob",
    )
    student = run_job(analyze_slide(workdir / "slide.tiff", checkpoint, workdir / "cache"))
    teacher = run_job(
        analyze_slide(workdir / "slide.tiff", checkpoint, workdir / "cache", use_teacher=True)
    )
    assert (student.score_source, teacher.score_source) == ("student", "teacher")
    assert teacher.mask_score == "prob"
    top = np.argsort(-teacher.mask_scores, kind="stable")[: teacher.masked.sum()]
    assert set(top) == set(np.flatnonzero(teacher.masked))
    np.testing.assert_allclose(teacher.attention, student.attention, rtol=1e-5)
    plain = write_checkpoint(workdir / "plain.safetensors", "abmil", mask_ratio_high=0.3)
    with pytest.raises(NoTeacherError, match="no MHIM teacher"):
        run_job(analyze_slide(workdir / "slide.tiff", plain, workdir / "cache", use_teacher=True))


def test_features_of_another_extractor_are_refused(workdir: Path, first_run) -> None:
    checkpoint = write_checkpoint(workdir / "wide.safetensors", "abmil", in_dim=BUILTIN_DIM + 1)
    with pytest.raises(CheckpointError, match="dimension"):
        run_job(analyze_slide(workdir / "slide.tiff", checkpoint, workdir / "cache"))


def test_slide_without_tissue_gives_an_empty_result(tmp_path: Path) -> None:
    slide = write_slide(tmp_path / "glass.tiff", tissue=False)
    checkpoint = write_checkpoint(tmp_path / "m.safetensors", "abmil")
    analysis = run_job(analyze_slide(slide, checkpoint, tmp_path / "cache"))
    assert analysis.status == "no tissue"
    assert analysis.n_patches == 0
    assert analysis.predicted_class is None
    assert analysis.instance_probs.shape == (0, 2)
    assert len(list((tmp_path / "cache" / "results").glob("*.json"))) == 1


def test_cancelling_leaves_no_result_behind(tmp_path: Path) -> None:
    slide = write_slide(tmp_path / "slide.tiff")
    checkpoint = write_checkpoint(tmp_path / "m.safetensors", "abmil")
    job = analyze_slide(slide, checkpoint, tmp_path / "cache")
    for step in job:
        if "features" in step.what:
            job.close()
            break
    assert not list((tmp_path / "cache").glob("results/*.json"))
    assert not list((tmp_path / "cache").rglob("*.h5"))
    # the next run starts over and finishes
    analysis = run_job(analyze_slide(slide, checkpoint, tmp_path / "cache"))
    npz, meta = result_paths(
        tmp_path / "cache", next((tmp_path / "cache" / "results").glob("*.json")).stem
    )
    assert npz.is_file()
    assert meta.is_file()
    assert analysis.n_patches > 0


def test_several_slides_go_on_past_a_failing_one(workdir: Path, first_run) -> None:
    from slidescope.app.analysis.inference import analyze_slides

    first, _ = first_run
    broken = workdir / "broken.svs"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing behind it
    checkpoint = workdir / "abmil.safetensors"
    steps: list[Progress] = []
    results = run_job(
        analyze_slides(
            [broken, workdir / "slide.tiff"], checkpoint, workdir / "cache", device="cpu"
        ),
        steps.append,
    )
    assert isinstance(results[broken], str)
    assert "broken.svs" in results[broken]
    good = results[workdir / "slide.tiff"]
    np.testing.assert_allclose(good.attention, first.attention)
    assert steps[-1] == Progress(2, 2, "done")
    assert all(s.total == 2 for s in steps)


def test_top_and_hardest_patches_and_their_images(workdir: Path, first_run) -> None:
    from slidescope.app.analysis.top_patches import patch_images_job, top_patches
    from slidescope.app.slides import open_slide

    first_run, _ = first_run
    groups = top_patches(first_run, k=3)
    top = groups["top attention"]
    assert top[0] == int(np.argmax(first_run.attention))
    assert not first_run.masked[groups["hardest"]].any()  # the hardest are never the masked
    with open_slide(workdir / "slide.tiff") as slide:
        images = run_job(patch_images_job(slide, first_run, icon_px=32, k=3))
        level = slide.best_level_for_downsample(first_run.patch_size_level0 / 32)
        side = round(first_run.patch_size_level0 / slide.downsamples[level])
    label, cx, cy, image = images["top attention"][0]
    x, y = first_run.coords[top[0]]
    assert (cx, cy) == (x + first_run.patch_size_level0 / 2, y + first_run.patch_size_level0 / 2)
    assert image.shape == (side, side, 3)  # the coarsest level that still has the detail
    assert float(label) == pytest.approx(float(first_run.attention[top[0]]), rel=1e-2)
