"""Reading feature files (ours and CLAM/TRIDENT's) and streaming bags under a byte budget."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from slidescope.models.errors import FeatureFileError
from slidescope.models.features import (
    BagCache,
    FeatureBags,
    check_feature_set,
    feature_statistics,
    find_feature_files,
    read_coords,
    read_feature_info,
    read_features,
)
from training_bags import write_feature_file


def test_read_feature_file_with_metadata(tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    path = write_feature_file(tmp_path / "a.h5", x, extractor="resnet50")
    info = read_feature_info(path)
    assert (info.slide_id, info.n_instances, info.feature_dim) == ("a", 12, 8)
    assert info.extractor == "resnet50"
    assert info.patch_size == 256
    assert info.patch_size_level0 == 512
    assert info.target_mpp == pytest.approx(0.5)
    assert info.complete is True
    assert np.array_equal(read_features(path), x)
    assert read_coords(path).shape == (12, 2)


def test_read_clam_file_without_metadata(tmp_path) -> None:
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as handle:
        handle["features"] = np.ones((5, 4), np.float16)
        handle["coords"] = np.zeros((5, 2), np.int64)
        handle["coords"].attrs["patch_size"] = 448
    info = read_feature_info(path)
    assert info.extractor is None
    assert info.target_mpp is None
    assert info.patch_size_level0 == 448
    assert info.slide_id == "clam"
    features = read_features(path)
    assert features.dtype == np.float32
    assert features.shape == (5, 4)


def test_read_file_with_batch_axis(tmp_path) -> None:
    path = tmp_path / "b.h5"
    with h5py.File(path, "w") as handle:
        handle["features"] = np.ones((1, 6, 3), np.float32)
    assert read_feature_info(path).n_instances == 6
    assert read_features(path).shape == (6, 3)


def test_not_a_feature_file(tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(FeatureFileError, match=r"bad\.h5"):
        read_feature_info(bad)
    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle["other"] = np.zeros(3)
    with pytest.raises(FeatureFileError, match="no 'features'"):
        read_features(tmp_path / "empty.h5")


def test_find_feature_files_lists_missing(tmp_path) -> None:
    write_feature_file(tmp_path / "s1.h5", np.zeros((2, 3)))
    with pytest.raises(FeatureFileError, match="s2, s3"):
        find_feature_files(tmp_path, ["s1", "s2", "s3"])
    found, missing = find_feature_files(tmp_path, ["s1", "s2"], skip_missing=True)
    assert list(found) == ["s1"]
    assert missing == ["s2"]


def test_check_feature_set_refuses_mixes_and_incomplete(tmp_path) -> None:
    a = read_feature_info(write_feature_file(tmp_path / "a.h5", np.zeros((2, 4)), "uni"))
    b = read_feature_info(write_feature_file(tmp_path / "b.h5", np.zeros((2, 4)), "resnet50"))
    c = read_feature_info(write_feature_file(tmp_path / "c.h5", np.zeros((2, 8)), "uni"))
    d = read_feature_info(
        write_feature_file(tmp_path / "d.h5", np.zeros((2, 4)), "uni", complete=False)
    )
    assert check_feature_set([a]) == a
    with pytest.raises(FeatureFileError, match="mix extractors"):
        check_feature_set([a, b])
    with pytest.raises(FeatureFileError, match="mix extractors"):
        check_feature_set([a, c])
    with pytest.raises(FeatureFileError, match="incomplete"):
        check_feature_set([a, d])


def test_cache_never_exceeds_budget() -> None:
    cache = BagCache(max_bytes=1000)
    rng = np.random.default_rng(0)
    for key in range(50):
        array = np.zeros(int(rng.integers(10, 120)), np.float32)
        cache.put(key, array)
        assert cache.n_bytes <= 1000
        assert cache.n_bytes == sum(a.nbytes for a in cache._items.values())
    cache.put("huge", np.zeros(1000, np.float32))
    assert "huge" not in cache


def test_cache_evicts_least_recently_used() -> None:
    cache = BagCache(max_bytes=300)
    for key in "abc":
        cache.put(key, np.zeros(25, np.float32))  # 100 bytes each
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", np.zeros(25, np.float32))
    assert "b" not in cache
    assert "a" in cache


def test_feature_bags_stream_under_tiny_budget(tmp_path) -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(int(rng.integers(5, 40)), 6)).astype(np.float32) for _ in range(8)]
    paths = [write_feature_file(tmp_path / f"s{i}.h5", a) for i, a in enumerate(arrays)]
    bags = FeatureBags(paths, cache_bytes=600)
    for _ in range(2):
        for i, array in enumerate(arrays):
            assert np.array_equal(bags[i].numpy(), array)
            assert bags.cache.n_bytes <= 600


def test_feature_statistics_match_numpy(tmp_path) -> None:
    rng = np.random.default_rng(2)
    arrays = [1000.0 + rng.normal(size=(n, 5)) * 3 for n in (7, 30, 1)]
    paths = [write_feature_file(tmp_path / f"s{i}.h5", a) for i, a in enumerate(arrays)]
    mean, std = feature_statistics(paths)
    everything = np.concatenate([a.astype(np.float32) for a in arrays]).astype(np.float64)
    assert np.allclose(mean, everything.mean(0), rtol=1e-6)
    assert np.allclose(std, everything.std(0), rtol=1e-4)
