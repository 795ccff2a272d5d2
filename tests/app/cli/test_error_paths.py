"""Every way a command can fail on the user's input: one line on stderr, a non-zero exit.

Each case runs ``slidescope.app.cli.main([...])`` in-process and checks that the exit
status is not 0, that stderr holds exactly one error line (a line saying on what the work
runs may come first), that the line names the file or the setting at fault, and that no
traceback escapes.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from slidescope.app.cli import main
from slidescope.models.checkpoints import CheckpointMeta, save_checkpoint
from slidescope.models.extractors.builtin import BUILTIN_DIM
from slidescope.models.mil.registry import create_model, list_models


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good slide, damaged ones, a checkpoint and an empty folder."""
    folder = tmp_path_factory.mktemp("errors")
    image = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    good = folder / "good.tiff"
    tifffile.imwrite(
        good, image, tile=(256, 256), photometric="rgb", compression="jpeg",
        resolution=(2e4, 2e4), resolutionunit="CENTIMETER",
    )  # fmt: skip
    data = bytearray(good.read_bytes())
    for i in range(len(data) // 4, len(data) - 10_000, 3_000):  # damaged tiles, intact header
        data[i : i + 50] = bytes(50)
    garbled = folder / "garbled.tiff"
    garbled.write_bytes(bytes(data))
    junk = folder / "junk.svs"
    junk.write_bytes(b"not a slide at all")
    torch.manual_seed(0)
    model = create_model("abmil", BUILTIN_DIM, 2)
    meta = CheckpointMeta.for_model(model, class_names=["a", "b"], extractor="builtin")
    checkpoint = save_checkpoint(folder / "model.safetensors", model, meta)
    empty = folder / "empty"
    empty.mkdir()
    return {
        "good": good, "garbled": garbled, "junk": junk, "checkpoint": checkpoint,
        "empty": empty, "missing": folder / "missing.tiff", "out": folder / "out",
    }  # fmt: skip


# (arguments with {names} of the files above, a word the one line must name)
CASES = {
    "info: no such file": (["info", "{missing}"], "missing.tiff"),
    "info: not a slide": (["info", "{junk}"], "junk.svs"),
    "tissue: damaged tiles": (["tissue", "{garbled}", "--out", "{out}"], "garbled.tiff"),
    "tissue: not a slide": (["tissue", "{junk}", "--out", "{out}"], "junk.svs"),
    "convert: no such file": (["convert", "{missing}", "{out}/x.zarr"], "missing.tiff"),
    "open: no such file": (["open", "{missing}"], "missing.tiff"),
    "demo-slide: no folder": (["demo-slide", "{out}/no/such/x.tiff", "--width", "1024",
                               "--height", "1024", "--quiet"], "x.tiff"),
    "extract: unknown device": (["extract", "{good}", "--out", "{out}", "--device", "tpu"], "tpu"),
    "extract: unknown extractor": (["extract", "{good}", "--out", "{out}", "--extractor",
                                    "nope"], "nope"),
    "extract: not a slide": (["extract", "{junk}", "--out", "{out}", "--device", "cpu"],
                             "junk.svs"),
    "train: unknown model": (["train", "--features", "{empty}", "--labels", "{missing}",
                              "--out", "{out}/m.safetensors", "--model", "resnet"], "resnet"),
    "train: not a safetensors file": (["train", "--features", "{empty}", "--labels",
                                       "{missing}", "--out", "{out}/m.pt"], "m.pt"),
    "train: teacher without mhim": (["train", "--features", "{empty}", "--labels", "{missing}",
                                     "--out", "{out}/m.safetensors", "--teacher-init",
                                     "{checkpoint}"], "teacher"),
    "train: unknown device": (["train", "--features", "{empty}", "--labels", "{missing}",
                               "--out", "{out}/m.safetensors", "--device", "tpu"], "tpu"),
    "train: no labels file": (["train", "--features", "{empty}", "--labels", "{missing}",
                               "--out", "{out}/m.safetensors", "--quiet"], "missing.tiff"),
    "evaluate: no checkpoint": (["evaluate", "--checkpoint", "{missing}", "--features",
                                 "{empty}", "--labels", "{missing}", "--out", "{out}/e.json",
                                 "--quiet"], "missing.tiff"),
    "export: unknown kind": (["export", "{good}", "--checkpoint", "{checkpoint}", "--out",
                              "{out}", "--kinds", "attention,heat"], "heat"),
    "export: opacity": (["export", "{good}", "--checkpoint", "{checkpoint}", "--out", "{out}",
                         "--opacity", "2"], "opacity"),
    "export: colormap": (["export", "{good}", "--checkpoint", "{checkpoint}", "--out", "{out}",
                          "--colormap", "rainbowish"], "rainbowish"),
    "export: mask ratio": (["export", "{good}", "--checkpoint", "{checkpoint}", "--out",
                            "{out}", "--mask-ratio", "1.5"], "mask ratio"),
    "export: no checkpoint": (["export", "{good}", "--checkpoint", "{missing}", "--out",
                               "{out}"], "missing.tiff"),
    "export: folder without slides": (["export", "{empty}", "--checkpoint", "{checkpoint}",
                                       "--out", "{out}"], "empty"),
}


RUN_LINE = re.compile(r"\S.* on cpu \(\d+ cores\)(: .+)?")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_user_error_is_one_line(case, files, capsys) -> None:
    words, named = CASES[case]
    argv = [w.format(**{k: str(v) for k, v in files.items()}) for w in words]
    code = main(argv)
    err = capsys.readouterr().err
    # besides the error, only the line saying on what the work runs (before its slides)
    lines = [line for line in err.strip().splitlines() if not RUN_LINE.fullmatch(line)]
    assert code != 0, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert named in lines[0]
    assert lines[0].startswith(f"slidescope {argv[0]}: error: ")


def test_unknown_model_names_the_valid_ones(files, capsys) -> None:
    main(["train", "--features", str(files["empty"]), "--labels", str(files["missing"]),
          "--out", str(files["out"] / "m.safetensors"), "--model", "resnet"])  # fmt: skip
    err = capsys.readouterr().err
    assert all(name in err for name in list_models())


def test_tissue_goes_on_past_a_bad_slide(files, tmp_path, capsys) -> None:
    code = main(["tissue", str(files["junk"]), str(files["good"]), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert (tmp_path / "good.tissue.png").is_file()
    assert "junk.svs" in captured.err
    assert "1 of 2 slides failed" in captured.err
    assert "Traceback" not in captured.err


class ClosedPipe(io.StringIO):
    """stdout whose reader has gone away, as under ``| head``."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_quietly(files, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["info", "--json", str(files["good"])])
    assert code != 0
    assert capsys.readouterr().err == ""


def test_export_help_names_every_heatmap_kind(capsys) -> None:
    from slidescope.app.analysis.heatmaps import KINDS

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    kinds_help = text.rsplit("--kinds KINDS", 1)[1].split("--normalise")[0]
    assert all(kind in kinds_help for kind in KINDS)
