"""The results cache: keyed by slide, checkpoint and setting; whole or absent, never stale."""

from __future__ import annotations

import numpy as np
from slidescope.app.analysis.results_cache import (
    file_sha256,
    load_result,
    result_key,
    result_paths,
    save_result,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis, empty_analysis
from slidescope.app.slides.slide import SlideIdentity

IDENTITY = SlideIdentity("s1", "abcd", 1000, 800, (0.25, 0.25))


def analysis() -> SlideAnalysis:
    return SlideAnalysis(
        identity=IDENTITY,
        coords=np.array([[0, 0], [256, 0]]),
        patch_size_level0=256,
        class_names=["a", "b"],
        probabilities=np.array([0.25, 0.75], np.float32),
        attention=np.array([0.3, 0.7], np.float32),
        instance_probs=np.array([[0.5, 0.5], [0.1, 0.9]], np.float32),
        masked=np.array([False, True]),
        hard_attention=np.array([1.0, 0.0], np.float32),
        mask_ratio=0.5,
        score_source="teacher",
        checkpoint_hash="f" * 64,
    )


def test_round_trip(tmp_path) -> None:
    key = result_key(IDENTITY, "f" * 64, 0.5, "teacher")
    save_result(tmp_path, key, analysis())
    loaded = load_result(tmp_path, key)
    assert loaded is not None
    assert loaded.identity == IDENTITY
    assert loaded.predicted_class == "b"
    assert loaded.score_source == "teacher"
    np.testing.assert_array_equal(loaded.masked, [False, True])
    np.testing.assert_allclose(loaded.instance_probs, analysis().instance_probs)
    assert loaded.coords.dtype == np.int64


def test_keys_separate_slides_checkpoints_and_settings() -> None:
    keys = {
        result_key(IDENTITY, "a" * 64, 0.1),
        result_key(IDENTITY, "b" * 64, 0.1),
        result_key(IDENTITY, "a" * 64, 0.2),
        result_key(IDENTITY, "a" * 64, 0.1, "teacher"),
        result_key(SlideIdentity("s1", "other", 1000, 800, None), "a" * 64, 0.1),
        result_key(IDENTITY, "a" * 64, 0.1, features="builtin-256px-0.5mpp-t0123abcd"),
        result_key(IDENTITY, "a" * 64, 0.1, features="builtin-256px-0.5mpp-t4567ef01"),
    }
    assert len(keys) == 7


def test_missing_or_damaged_entries_are_not_trusted(tmp_path) -> None:
    assert load_result(tmp_path, "nothing") is None
    key = "k"
    save_result(tmp_path, key, analysis())
    npz, _ = result_paths(tmp_path, key)
    npz.write_bytes(b"truncated")
    assert load_result(tmp_path, key) is None
    save_result(tmp_path, key, analysis())
    assert load_result(tmp_path, key) is not None
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]


def test_empty_result_round_trips(tmp_path) -> None:
    save_result(tmp_path, "e", empty_analysis(IDENTITY, ["a", "b"], 256, mask_ratio=0.1))
    loaded = load_result(tmp_path, "e")
    assert loaded is not None
    assert loaded.status == "no tissue"
    assert loaded.instance_probs.shape == (0, 2)
    assert loaded.predicted_class is None


def test_file_hash(tmp_path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_new_tissue_rule_is_a_new_feature_cache() -> None:
    """Features and results made under another tissue rule are never taken for current."""
    from slidescope.app.analysis.checkpoint_features import geometry_name
    from slidescope.app.analysis.extract import ExtractConfig
    from slidescope.app.analysis.tissue import TissueParams

    now = geometry_name(ExtractConfig())
    assert now.startswith("builtin-256px-0.5mpp-t")
    assert geometry_name(ExtractConfig()) == now  # stable
    assert geometry_name(ExtractConfig(tissue=TissueParams(pen_margin_um=0.0))) != now
    assert geometry_name(ExtractConfig(min_tissue=0.25)) != now
