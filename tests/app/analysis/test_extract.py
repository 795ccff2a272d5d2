"""The extraction job and the ``extract`` / ``tissue`` commands, end to end on small slides."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from slidescope.app.analysis.extract import (
    ExtractConfig,
    build_extractor,
    extract_features,
    reading_threads,
)
from slidescope.app.analysis.feature_writer import partial_path
from slidescope.app.cli import main
from slidescope.app.errors import MissingMppError
from slidescope.app.jobs import run_job
from slidescope.models.devices import DeviceMemoryError
from tissue_slides import he_like_image, write_pyramid_tiff

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# 64 px patches at 1 µm/px on a 0.5 µm/px slide: 128 level-0 px, read from level 1
CONFIG = ExtractConfig(target_mpp=1.0, patch_px=64, batch_size=8, workers=2, device="cpu")


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    image = he_like_image(1536, 1024, blobs=[(450, 500, 350), (1250, 520, 260)], seed=2)
    return write_pyramid_tiff(tmp_path_factory.mktemp("slides") / "case01.tiff", image, mpp=0.5)


@pytest.fixture(scope="module")
def glass_path(tmp_path_factory):
    return write_pyramid_tiff(
        tmp_path_factory.mktemp("glass") / "glass.tiff", he_like_image(768, 512)
    )


@pytest.fixture(scope="module")
def reference(slide_path, tmp_path_factory):
    """Features of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    path = run_job(extract_features(slide_path, out, CONFIG))
    with h5py.File(path, "r") as f:
        return f["coords"][:], f["features"][:]


def test_feature_file_contract(slide_path, reference, tmp_path) -> None:
    path = run_job(extract_features(slide_path, tmp_path, CONFIG))
    assert path == tmp_path / "case01.h5"
    assert not partial_path(path).exists()
    with h5py.File(path, "r") as f:
        features, coords = f["features"], f["coords"]
        assert features.dtype == np.float32
        assert coords.dtype == np.int64
        assert features.maxshape == (None, 74)
        assert features.chunks is not None
        assert coords.shape == (features.shape[0], 2)
        assert len(coords) > 20
        assert dict(coords.attrs) == {"patch_size": 128, "patch_level": 1}
        attrs = dict(f.attrs)
        assert attrs["format_version"] == 1
        assert bool(attrs["complete"])
        assert attrs["extractor"] == "builtin"
        assert attrs["feature_dim"] == 74
        assert attrs["patch_size"] == 64
        assert attrs["patch_size_level0"] == 128
        assert attrs["target_mpp"] == 1.0
        assert list(attrs["slide_mpp"]) == [0.5, 0.5]
        assert attrs["read_level"] == 1
        assert attrs["slide_id"] == "case01"
        assert (attrs["slide_width"], attrs["slide_height"]) == (1536, 1024)
        assert len(attrs["slide_fingerprint"]) == 16
        # patches lie on the grid and on the tissue
        assert np.all(coords[:] % 128 == 0)
        assert np.isfinite(features[:]).all()
        assert np.array_equal(coords[:], reference[0])


def test_cancelled_run_resumes_to_the_same_features(slide_path, reference, tmp_path) -> None:
    job = extract_features(slide_path, tmp_path, CONFIG)
    steps = [next(job) for _ in range(4)]  # tissue, start, two batches
    job.close()
    partial = partial_path(tmp_path / "case01.h5")
    assert steps[-1].done == 16
    assert not (tmp_path / "case01.h5").exists()
    with h5py.File(partial, "r") as f:
        assert not f.attrs["complete"]
        assert f["features"].shape[0] == 16
    resumed = extract_features(slide_path, tmp_path, CONFIG)
    first = [next(resumed) for _ in range(2)][-1]
    assert first.done == 16  # the written patches are not read again
    path = run_job(resumed)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["coords"][:], reference[0])
        assert np.allclose(f["features"][:], reference[1], atol=1e-5)


def test_up_to_date_files_are_skipped(slide_path, tmp_path) -> None:
    path = run_job(extract_features(slide_path, tmp_path, CONFIG))
    stamp = path.stat().st_mtime_ns
    steps = list(extract_features(slide_path, tmp_path, CONFIG))
    assert steps[-1].what.endswith("up to date")
    assert path.stat().st_mtime_ns == stamp
    # other geometry: extracted again
    other = ExtractConfig(target_mpp=1.0, patch_px=96, batch_size=8, workers=1, device="cpu")
    run_job(extract_features(slide_path, tmp_path, other))
    with h5py.File(path, "r") as f:
        assert f.attrs["patch_size"] == 96


@pytest.mark.skipif(
    shutil.which("cc") is None, reason="torch.compile on the CPU needs a C compiler"
)
def test_compiled_extraction_compiles_once(slide_path, tmp_path) -> None:
    """``--compile``: a slide's short last batch and the next slide reuse the one compiled model.

    Each new batch size compiled the model again (a slide's last batch has a size of its
    own): the compiled run was 40x slower than the eager one.
    """
    config = ExtractConfig(
        extractor="vit_test", target_mpp=1.0, patch_px=64, batch_size=7, workers=1,
        device="cpu", allow_random_weights=True,
    )  # fmt: skip
    torch.manual_seed(0)
    extractor = build_extractor(config, torch.device("cpu"))
    eager = run_job(extract_features(slide_path, tmp_path / "eager", config, extractor))
    compiled = replace(config, compile=True)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        first = run_job(extract_features(slide_path, tmp_path / "one", compiled, extractor))
        again = run_job(extract_features(slide_path, tmp_path / "two", compiled, extractor))
    with h5py.File(eager) as e, h5py.File(first) as f, h5py.File(again) as g:
        assert len(e["coords"]) % 7 != 0  # the last batch is a short one
        assert np.array_equal(f["coords"][:], e["coords"][:])
        assert np.allclose(f["features"][:], e["features"][:], atol=1e-4)
        assert np.allclose(g["features"][:], e["features"][:], atol=1e-4)


def test_reading_threads_follow_the_device(monkeypatch) -> None:
    from slidescope.app.analysis import extract

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert reading_threads(5, gpu) == 5
    assert reading_threads(None, cpu) == 2
    for cores, threads in [(16, 8), (7, 5), (4, 2), (1, 2)]:
        monkeypatch.setattr(extract, "usable_cores", lambda cores=cores: cores)
        assert reading_threads(None, gpu) == threads
        assert reading_threads(None, cpu) == 2


def _short_of_memory(extractor: torch.nn.Module, most: int) -> list[int]:
    """Make ``extractor`` fail as a GPU short of memory does on batches over ``most``."""
    forward, sizes = extractor.forward, []

    def on_a_small_gpu(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        if x.shape[0] > most:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0")
        return forward(x)

    extractor.forward = on_a_small_gpu
    return sizes


def test_a_gpu_short_of_memory_goes_on_in_smaller_batches(slide_path, reference, tmp_path):
    extractor = build_extractor(CONFIG, torch.device("cpu"))
    sizes = _short_of_memory(extractor, most=2)
    steps: list = []
    path = run_job(extract_features(slide_path, tmp_path, CONFIG, extractor), steps.append)
    assert [s.what for s in steps if "GPU" in s.what] == [
        "case01: GPU memory short: 4 patches a batch",
        "case01: GPU memory short: 2 patches a batch",
    ]
    assert sizes[:3] == [8, 4, 2]
    assert max(sizes[2:]) == 2
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["coords"][:], reference[0])
        assert np.allclose(f["features"][:], reference[1], atol=1e-5)


def test_a_gpu_without_room_for_one_patch_says_so(slide_path, tmp_path) -> None:
    extractor = build_extractor(CONFIG, torch.device("cpu"))
    _short_of_memory(extractor, most=0)
    message = (
        r"case01.tiff: the GPU has not enough memory for builtin on even one patch "
        r"\(tried to allocate 1.50 gib\); extract with --device cpu"
    )
    with pytest.raises(DeviceMemoryError, match=message):
        run_job(extract_features(slide_path, tmp_path, CONFIG, extractor))
    assert not (tmp_path / "case01.h5").exists()


def test_a_slide_without_tissue_is_an_empty_bag(glass_path, tmp_path) -> None:
    steps = []
    path = run_job(extract_features(glass_path, tmp_path, CONFIG), on_progress=steps.append)
    assert "no patch has 50% tissue" in steps[-1].what
    with h5py.File(path, "r") as f:
        assert f["features"].shape == (0, 74)
        assert f["coords"].shape == (0, 2)
        assert bool(f.attrs["complete"])


def test_a_slide_without_mpp_needs_slide_mpp(tmp_path) -> None:
    image = he_like_image(1024, 1024, blobs=[(512, 512, 400)])
    path = write_pyramid_tiff(tmp_path / "nompp.tiff", image, mpp=None, levels=2)
    with pytest.raises(MissingMppError, match="--slide-mpp"):
        run_job(extract_features(path, tmp_path / "out", CONFIG))
    config = ExtractConfig(patch_px=64, slide_mpp=0.5, device="cpu", min_tissue=0.2)
    out = run_job(extract_features(path, tmp_path / "out", config))
    with h5py.File(out, "r") as f:
        assert list(f.attrs["slide_mpp"]) == [0.5, 0.5]
        assert f.attrs["patch_size_level0"] == 64


def test_extract_command(slide_path, glass_path, tmp_path, capsys) -> None:
    out = tmp_path / "features"
    args = ["extract", str(slide_path), str(glass_path), "--out", str(out), "--patch", "64"]
    args += ["--target-mpp", "1"]
    assert main([*args, "--device", "cpu", "--workers", "0", "--json"]) == 0
    printed = capsys.readouterr()
    outcome = json.loads(printed.out)
    # how it runs, on stderr: stdout stays machine-readable
    assert re.search(
        r"^builtin on cpu \(\d+ cores\): 64 patches a batch, 2 reading threads$",
        printed.err,
        re.MULTILINE,
    ), printed.err
    assert outcome["counts"]["done"] == 1
    assert outcome["counts"]["no tissue"] == 1  # the glass slide: an empty bag, said so
    assert [s["status"] for s in outcome["slides"]] == ["done", "no tissue"]
    assert (out / "case01.h5").is_file()
    assert (out / "glass.h5").is_file()
    assert (out / "summary.csv").is_file()
    # a second run finds both up to date
    assert main([*args, "--device", "cpu", "--workers", "0"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert main(["extract", str(tmp_path / "nope.tiff"), "--out", str(out), "--workers", "0"]) == 1
    assert "nope.tiff" in capsys.readouterr().err
    uni = ["extract", str(slide_path), "--out", str(out), "--extractor", "uni", "--workers", "0"]
    assert main(uni) == 1
    assert "--weights" in capsys.readouterr().err
    if not torch.cuda.is_available():  # a GPU this machine has not: one error, before any slide
        assert main([*args, "--device", "cuda", "--workers", "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            "slidescope extract: error: device 'cuda' asked for, but torch sees no CUDA GPU; "
            "use --device cpu"
        ]


def test_tissue_command(slide_path, tmp_path, capsys) -> None:
    assert main(["tissue", str(slide_path), "--out", str(tmp_path), "--workers", "0"]) == 0
    assert (tmp_path / "case01.tissue.png").is_file()
    data = json.loads((tmp_path / "case01.tissue.geojson").read_text())
    assert len(data["features"]) == 2
    assert "1 done" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_slide_end_to_end(tmp_path) -> None:
    from slidescope.app.demo.generate import generate_demo_slide

    demo = run_job(generate_demo_slide(tmp_path / "demo.tiff", 3072, 2048, seed=5))
    config = ExtractConfig(batch_size=16, workers=2, device="cpu")
    path = run_job(extract_features(demo.path, tmp_path / "features", config))
    with h5py.File(path, "r") as f:
        assert f.attrs["read_level"] == 1
        assert f.attrs["patch_size_level0"] == 512
        assert f["features"].shape[0] > 0
        assert bool(f.attrs["complete"])
