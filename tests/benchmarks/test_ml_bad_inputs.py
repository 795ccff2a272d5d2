"""Bad machine-learning inputs through the command line: the table of outcomes.

About eighty damaged checkpoints, absurd training settings, broken labels CSVs and broken
feature files, each given to ``slidescope train``, ``evaluate``, ``export`` (or ``extract
--weights``) exactly as a user would type it: ``main([...])`` in-process with stderr
captured, or in a child process with a 6 GiB address-space cap where a huge allocation
could take the test run down. Each outcome is one of

* ``clear error``: exit status not 0, one ``slidescope <command>: error: ...`` line on
  stderr that names the file or the setting at fault, no traceback;
* ``handled``: exit status 0 where the input is odd but usable (a UTF-16 CSV, a feature
  file that export extracts again), and the outputs check sound (finite figures);
* ``vague error``: exit status not 0 without such a line (reported, not failed);
* ``traceback``: an exception escaped, a traceback was printed, a raw exception type
  leads the message, or the process crashed or hung;
* ``silent wrong result``: exit status 0 although the input was bad (NaN figures
  reported, a model saved from NaN data, a threshold of 1.5 applied), or code from a
  pickle ran.

Three controls (good inputs) must come out clean, so that the checks of the outputs do not
flag good runs. Run with
``python -m pytest tests/benchmarks/test_ml_bad_inputs.py -m benchmark -s -o addopts=""``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from export_fixtures import export_conftest
from safetensors.torch import load_file, safe_open, save_file
from slidescope.app.cli import main
from slidescope.models.extractors.builtin import BUILTIN_DIM
from training_bags import planted_bags, survival_bags

pytestmark = [pytest.mark.benchmark, pytest.mark.usefixtures("one_torch_thread")]

OUTCOMES = ("clear error", "handled", "vague error", "traceback", "silent wrong result")
#: the address-space cap of a contained run: torch imports in it, terabytes do not fit
CHILD_MEMORY = 6 << 30
#: a raw exception type leading a one-line message ("slide.tiff: KeyError: 'features'")
RAW_EXCEPTION = re.compile(r"(?:^|: )([A-Z]\w*(?:Error|Exception))(?::|$)")
NON_FINITE = re.compile(r"(?<![\w.])(nan|-?inf)(?![\w])", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One bad input: the words typed and what the error line must name.

    ``accept``: exit 0 is right too, when the outputs check sound. ``contain``: run in a
    child process under the memory cap. ``marker``: a file that must never appear (the
    payload of a pickle that wants to run code).
    """

    name: str
    argv: list[str]
    names: tuple[str, ...]
    accept: bool = False
    contain: bool = False
    marker: Path | None = None


@dataclass
class Outcome:
    """How one case ended: its kind (one of OUTCOMES) and the first line of the message."""

    case: Case
    kind: str
    message: str
    seconds: float
    stderr: str = field(repr=False, default="")


@dataclass
class Inputs:
    """Good inputs that the cases damage one at a time."""

    root: Path
    bags: Path  # BUILTIN_DIM features from "builtin", 30 slides (test: slide_024..029)
    labels: Path  # slide_id,label,split with labels 0 / 1
    eval_labels: Path  # the same with the checkpoint's class names (normal / tumour)
    survival: Path
    survival_labels: Path
    checkpoint: Path  # abmil on builtin features, 128 px at 0.5 µm/px
    slide: Path
    slide_features: Path  # the slide's extracted feature file, s.h5


# --- inputs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    from slidescope.app.demo.generate import generate_demo_slide
    from slidescope.app.jobs import run_job

    root = tmp_path_factory.mktemp("ml_bad_inputs")
    bags, labels = planted_bags(
        root / "bags", n_bags=30, n_instances=12, dim=BUILTIN_DIM, extractor="builtin"
    )
    rows = _read_rows(labels)
    names = {"0": "normal", "1": "tumour"}
    eval_labels = _write_rows(root / "eval_labels.csv", [[r[0], names[r[1]], r[2]] for r in rows])
    survival, survival_labels = survival_bags(root / "surv", n_bags=20, n_instances=10)
    checkpoint = export_conftest().write_abmil_checkpoint(root / "model.safetensors")
    slide = run_job(generate_demo_slide(root / "s.tiff", 1024, 1024, seed=1)).path
    square = [[[0, 0], [1024, 0], [1024, 1024], [0, 1024], [0, 0]]]
    roi = root / "whole.geojson"
    roi.write_text(json.dumps({"type": "Polygon", "coordinates": square}))
    extracted = root / "slide_features"
    argv = ["extract", str(slide), "--out", str(extracted), "--patch", "128", "--device", "cpu"]
    argv += ["--roi", str(roi), "--roi-mode", "replace", "--workers", "0"]
    assert main(argv) == 0
    surv = (survival, survival_labels)
    return Inputs(root, bags, labels, eval_labels, *surv, checkpoint, slide, extracted / "s.h5")


def _read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))[1:]


def _write_rows(path: Path, rows: list[list[str]], header: tuple[str, ...] | None = None) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if header is None:
            header = ("slide_id", "label", "split")
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def _checkpoint_parts(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["slidescope"])
    return load_file(str(path)), meta


def _write_checkpoint(path: Path, tensors: dict, meta: dict | str | None) -> Path:
    text = meta if isinstance(meta, str) or meta is None else json.dumps(meta)
    save_file(tensors, str(path), metadata=None if text is None else {"slidescope": text})
    return path


class RunsCode:
    """Unpickling this runs a shell command: what a malicious ``.pt`` file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _features_folder(
    source: Path, dest: Path, slide_id: str, damage: Callable[[Path], None]
) -> Path:
    """``dest``: links to every feature file of ``source``, and one damaged copy."""
    dest.mkdir(parents=True)
    for path in source.glob("*.h5"):
        if path.stem != slide_id:
            (dest / path.name).symlink_to(path)
    target = dest / f"{slide_id}.h5"
    shutil.copyfile(source / f"{slide_id}.h5", target)
    damage(target)
    return dest


def _rewrite(path: Path, features: np.ndarray | None) -> None:
    """Replace the file's features (and coords, to the same length); None drops them."""
    with h5py.File(path, "r+") as handle:
        coords = handle["coords"][...]
        coord_attrs = dict(handle["coords"].attrs)
        del handle["features"]
        if features is None:
            return
        n = len(features)
        coords = np.resize(coords, (n, 2)) if n else np.zeros((0, 2), np.int64)
        del handle["coords"]
        handle.create_dataset("features", data=features.astype(np.float32))
        handle.create_dataset("coords", data=coords).attrs.update(coord_attrs)
        handle.attrs["feature_dim"] = features.shape[1]


def _damages(dim: int) -> dict[str, Callable[[Path], None]]:
    """The ways a feature file goes wrong, by case name."""

    def nan(path: Path) -> None:
        with h5py.File(path, "r") as handle:
            x = handle["features"][...]
        x[0, :3] = np.nan
        _rewrite(path, x)

    def inf(path: Path) -> None:
        with h5py.File(path, "r") as handle:
            x = handle["features"][...]
        x[-1, 0] = np.inf
        _rewrite(path, x)

    def truncated(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return {
        "zero rows": lambda p: _rewrite(p, np.zeros((0, dim), np.float32)),
        "NaN features": nan,
        "Inf features": inf,
        "no 'features' dataset": lambda p: _rewrite(p, None),
        "truncated HDF5": truncated,
        "text file named .h5": lambda p: p.write_text("slide_id,feature\ns,0.5\n"),
    }


# --- the cases -------------------------------------------------------------------------


#: fast, quiet, on the CPU, never resumed from another case's state
TRAIN_QUICKLY = ["--epochs", "1", "--device", "cpu", "--quiet", "--no-resume"]
EVALUATE_QUICKLY = ["--bootstrap", "20", "--device", "cpu", "--quiet"]
EXPORT_QUICKLY = ["--device", "cpu", "--overlay", "none", "--workers", "0"]
EXPORT_QUICKLY += ["--kinds", "attention,prob"]


def _train(
    ins: Inputs, out: Path, *extra: str, features: Path | None = None, labels: Path | None = None
) -> list[str]:
    data = ["--features", str(features or ins.bags), "--labels", str(labels or ins.labels)]
    return ["train", *data, "--out", str(out / "model.safetensors"), *TRAIN_QUICKLY, *extra]


def _evaluate(
    ins: Inputs,
    out: Path,
    checkpoint: Path | None = None,
    features: Path | None = None,
    labels: Path | None = None,
) -> list[str]:
    data = ["--features", str(features or ins.bags), "--labels", str(labels or ins.eval_labels)]
    model = ["--checkpoint", str(checkpoint or ins.checkpoint)]
    return ["evaluate", *model, *data, "--out", str(out / "metrics.json"), *EVALUATE_QUICKLY]


def _export(
    ins: Inputs,
    out: Path,
    checkpoint: Path | None = None,
    features: Path | None = None,
    *extra: str,
) -> list[str]:
    if features is None:  # export may write there: every case has its own copy
        features = out / "features"
        features.mkdir(exist_ok=True)
        shutil.copyfile(ins.slide_features, features / "s.h5")
    model = ["--checkpoint", str(checkpoint or ins.checkpoint), "--features", str(features)]
    return [
        "export",
        str(ins.slide),
        *model,
        "--out",
        str(out / "export"),
        *EXPORT_QUICKLY,
        *extra,
    ]


def checkpoint_cases(ins: Inputs, folder: Path) -> list[Case]:
    """Damaged checkpoints, each given to evaluate and to export."""
    tensors, meta = _checkpoint_parts(ins.checkpoint)
    first = next(k for k, v in tensors.items() if v.is_floating_point())

    def poke(value: float) -> dict:
        changed = {k: v.clone() for k, v in tensors.items()}
        changed[first].view(-1)[0] = value
        return changed

    def meta_with(**changes) -> dict:
        return {**meta, **changes}

    files: dict[str, tuple[str, Callable[[Path], object]]] = {
        "one NaN weight": ("nan_weight", lambda p: _write_checkpoint(p, poke(math.nan), meta)),
        "one Inf weight": ("inf_weight", lambda p: _write_checkpoint(p, poke(math.inf), meta)),
        "NaN threshold": (
            "nan_threshold",
            lambda p: _write_checkpoint(p, tensors, meta_with(threshold=math.nan)),
        ),
        "threshold 1.5": (
            "threshold_1_5",
            lambda p: _write_checkpoint(p, tensors, meta_with(threshold=1.5)),
        ),
        "truncated safetensors": (
            "truncated",
            lambda p: p.write_bytes(
                ins.checkpoint.read_bytes()[: ins.checkpoint.stat().st_size // 2]
            ),
        ),
        "text file named .safetensors": ("text", lambda p: p.write_text("weights: none\n")),
        "no SlideScope metadata": ("no_meta", lambda p: _write_checkpoint(p, tensors, None)),
        "garbled metadata JSON": (
            "garbled_meta",
            lambda p: _write_checkpoint(p, tensors, '{"architecture": "abm'),
        ),
        "3 class names for 2 classes": (
            "three_names",
            lambda p: _write_checkpoint(p, tensors, meta_with(class_names=["a", "b", "c"])),
        ),
        "in_dim 32, weights for 74": (
            "in_dim_32",
            lambda p: _write_checkpoint(p, tensors, meta_with(in_dim=32)),
        ),
        "arch_kwargs hidden_dim=0": (
            "hidden_0",
            lambda p: _write_checkpoint(p, tensors, meta_with(arch_kwargs={"hidden_dim": 0})),
        ),
        "arch_kwargs hidden_dim=1e7": (
            "hidden_1e7",
            lambda p: _write_checkpoint(p, tensors, meta_with(arch_kwargs={"hidden_dim": 10**7})),
        ),
        "unknown architecture": (
            "unknown_arch",
            lambda p: _write_checkpoint(p, tensors, meta_with(architecture="resnet_mil")),
        ),
    }
    cases = []
    for label, (stem, write) in files.items():
        path = folder / "checkpoints" / f"{stem}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        contain = "1e7" in label
        for command, build in (("evaluate", _evaluate), ("export", _export)):
            out = _case_dir(folder, f"{command}-{stem}")
            cases.append(
                Case(f"ckpt: {label}", build(ins, out, path), (path.name,), contain=contain)
            )
    marker = folder / "PICKLED_CODE_RAN"
    evil = folder / "checkpoints" / "runs_code.pt"
    torch.save({"weight": RunsCode(marker)}, evil)
    # the payload is live: an unsafe load of the same pickle runs it
    probe = folder / "checkpoints" / "probe.pt"
    torch.save({"weight": RunsCode(folder / "probe_ran")}, probe)
    torch.load(probe, weights_only=False)
    assert (folder / "probe_ran").exists()
    plain = folder / "checkpoints" / "plain_state_dict.pt"
    torch.save({k: v.clone() for k, v in tensors.items()}, plain)
    for label, path in (("pickle that runs code", evil), ("plain .pt state dict", plain)):
        for command, build in (("evaluate", _evaluate), ("export", _export)):
            out = _case_dir(folder, f"{command}-{path.stem}")
            cases.append(
                Case(f"ckpt: {label}", build(ins, out, path), (path.name,), marker=marker)
            )
        # where a .pt file is really read: the weights of a patch feature extractor
        out = _case_dir(folder, f"extract-{path.stem}")
        argv = ["extract", str(ins.slide), "--out", str(out), "--weights", str(path)]
        argv += ["--extractor", "resnet50-trunc", "--device", "cpu", "--workers", "0"]
        cases.append(Case(f"weights: {label}", argv, (path.name,), marker=marker))
    out = _case_dir(folder, "train-teacher-evil")
    argv = _train(ins, out, "--method", "mhim", "--teacher-init", str(evil))
    cases.append(Case("teacher-init: pickle that runs code", argv, (evil.name,), marker=marker))
    return cases


def train_setting_cases(ins: Inputs, folder: Path) -> list[Case]:
    """Absurd or misspelt ``train`` options (given to good data)."""
    settings = {
        "unknown --model": (["--model", "resnet"], ("resnet",)),
        "--model-arg unknown key": (["--model-arg", "hiddn_dim=64"], ("hiddn_dim",)),
        "--model-arg hidden_dim=0": (["--model-arg", "hidden_dim=0"], ("hidden_dim",)),
        "--model-arg hidden_dim=1e7": (["--model-arg", "hidden_dim=10000000"], ("hidden_dim",)),
        "--model-arg hidden_dim=abc": (["--model-arg", "hidden_dim=abc"], ("hidden_dim",)),
        "--model-arg hidden_dim=2.5": (["--model-arg", "hidden_dim=2.5"], ("hidden_dim",)),
        "--model-arg dropout=high": (["--model-arg", "dropout=high"], ("dropout",)),
        "--model-arg without =": (["--model-arg", "hidden_dim"], ("model-arg",)),
        "--epochs 0": (["--epochs", "0"], ("epochs",)),
        "--lr -1": (["--lr", "-1"], ("lr",)),
        "--lr nan": (["--lr", "nan"], ("lr",)),
        "--lr inf": (["--lr", "inf"], ("lr",)),
        "unknown --preset": (["--preset", "camelyon99"], ("camelyon99",)),
        "--mask-ratio-high 1.5 (mhim)": (
            ["--method", "mhim", "--mask-ratio-high", "1.5"],
            ("mask_ratio_high", "mask-ratio-high"),
        ),
        "--val-fraction 1.5": (["--val-fraction", "1.5"], ("val_fraction", "val-fraction")),
        "--max-instances 0": (["--max-instances", "0"], ("max_instances", "max-instances")),
        "--device tpu": (["--device", "tpu"], ("tpu",)),
    }
    cases = []
    for label, (extra, names) in settings.items():
        out = _case_dir(folder, "train-" + re.sub(r"\W+", "_", label))
        argv = _train(ins, out, *extra)
        # --device is last in _train's words: the case's own comes after and wins
        cases.append(Case(f"train: {label}", argv, names, contain="1e7" in label))
    for label, extra, names in (
        ("--mask-ratio 1.5", ["--mask-ratio", "1.5"], ("mask ratio", "mask-ratio")),
        ("--threshold nan", ["--threshold", "nan"], ("threshold",)),
        ("--threshold 1.5 (scores 0-1)", ["--threshold", "1.5"], ("threshold",)),
    ):
        out = _case_dir(folder, "export-" + re.sub(r"\W+", "_", label))
        cases.append(Case(f"export: {label}", _export(ins, out, None, None, *extra), names))
    return cases


def label_cases(ins: Inputs, folder: Path) -> list[Case]:
    """Broken labels CSVs, given to train (and a few to evaluate)."""
    rows = _read_rows(ins.labels)
    d = folder / "labels"
    d.mkdir()
    (d / "empty.csv").write_bytes(b"")
    _write_rows(d / "header_only.csv", [])
    _write_rows(d / "no_header.csv", rows, header=())
    _write_rows(d / "no_label_column.csv", rows, header=("slide_id", "diagnosis", "split"))
    latin = "slide_id,label,split,note\n" + "".join(
        f"{s},{y},{p},Gewebe Müller\n" for s, y, p in rows
    )
    (d / "latin1.csv").write_bytes(latin.encode("latin-1"))
    (d / "utf16.csv").write_bytes(latin.encode("utf-16"))  # with its BOM, as Excel writes
    _write_rows(d / "unknown_slide.csv", [*rows, ["slide_999", "1", "train"]])
    _write_rows(d / "one_class.csv", [[s, "1", p] for s, _, p in rows])
    _write_rows(d / "duplicate_ids.csv", [*rows, [rows[0][0], str(1 - int(rows[0][1])), "train"]])
    cases = [
        Case(
            "labels: missing file",
            _train(ins, _case_dir(folder, "lab-missing"), labels=d / "missing.csv"),
            ("missing.csv",),
        ),
    ]
    for stem, label, accept in (
        ("empty", "empty file", False),
        ("header_only", "header only", False),
        ("no_header", "no header", False),
        ("no_label_column", "no label column", False),
        ("latin1", "latin-1 bytes", True),
        ("utf16", "UTF-16 with BOM", True),
        ("unknown_slide", "slide id without features", False),
        ("one_class", "one class only", False),
        ("duplicate_ids", "duplicated slide id", False),
    ):
        path = d / f"{stem}.csv"
        names = (path.name, "slide_999") if stem == "unknown_slide" else (path.name,)
        if stem == "duplicate_ids":
            names = (path.name, rows[0][0])
        out = _case_dir(folder, f"lab-{stem}")
        cases.append(Case(f"labels: {label}", _train(ins, out, labels=path), names, accept))
    surv = _read_rows(ins.survival_labels)
    for stem, value in (("nan_time", "nan"), ("negative_time", "-3.5"), ("inf_time", "inf")):
        changed = [list(r) for r in surv]
        changed[1][1] = value
        path = _write_rows(
            d / f"survival_{stem}.csv", changed, header=("slide_id", "time", "event", "split")
        )
        out = _case_dir(folder, f"lab-surv-{stem}")
        argv = _train(ins, out, "--task", "survival", features=ins.survival, labels=path)
        cases.append(Case(f"labels: survival time {value}", argv, (path.name, changed[1][0])))
    # evaluate: the labels are not the checkpoint's class names; the test rows hold one class
    out = _case_dir(folder, "eval-label-names")
    cases.append(
        Case(
            "eval labels: 0/1, model normal/tumour",
            _evaluate(ins, out, labels=ins.labels),
            (ins.labels.name,),
        )
    )
    eval_rows = _read_rows(ins.eval_labels)
    one = _write_rows(
        d / "test_one_class.csv", [[s, "tumour" if p == "test" else y, p] for s, y, p in eval_rows]
    )
    out = _case_dir(folder, "eval-one-class")
    cases.append(
        Case(
            "eval labels: test rows one class",
            _evaluate(ins, out, labels=one),
            (one.name,),
            accept=True,  # metrics that exist are written; the AUC is said to be undefined
        )
    )
    return cases


def feature_cases(ins: Inputs, folder: Path) -> list[Case]:
    """Broken feature files, given to train, evaluate and export."""
    cases = []
    for label, damage in _damages(BUILTIN_DIM).items():
        slug = re.sub(r"\W+", "_", label)
        for command, slide_id in (("train", "slide_000"), ("evaluate", "slide_029")):
            out = _case_dir(folder, f"{command}-feat-{slug}")
            features = _features_folder(ins.bags, out / "features", slide_id, damage)
            argv = (_train if command == "train" else _evaluate)(ins, out, features=features)
            cases.append(Case(f"h5: {label}", argv, (f"{slide_id}.h5", slide_id)))
        out = _case_dir(folder, f"export-feat-{slug}")
        features = _features_folder(ins.slide_features.parent, out / "features", "s", damage)
        # export extracts again a file that is not a complete extraction of this slide, and
        # a complete one without patches is what extract writes for a slide without tissue
        recoverable = label in ("truncated HDF5", "text file named .h5", "zero rows")
        cases.append(
            Case(
                f"h5: {label}",
                _export(ins, out, None, features),
                ("s.h5", "s.tiff"),
                accept=recoverable,
            )
        )
    wrong = _case_dir(folder, "eval-wrong-dim")
    features, _ = planted_bags(
        wrong / "bags16", n_bags=30, n_instances=12, dim=16, extractor="builtin"
    )
    cases.append(
        Case("h5: dimension 16, model 74", _evaluate(ins, wrong, features=features), ("16", "74"))
    )
    out = _case_dir(folder, "export-wrong-dim")
    features = _features_folder(
        ins.slide_features.parent,
        out / "features",
        "s",
        lambda p: _rewrite(p, np.ones((16, 16), np.float32)),
    )
    cases.append(
        Case("h5: dimension 16, model 74", _export(ins, out, None, features), ("16", "74"))
    )
    return cases


def _case_dir(folder: Path, slug: str) -> Path:
    path = folder / "cases" / slug
    path.mkdir(parents=True)
    return path


# --- running and judging ---------------------------------------------------------------


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``main(argv)``; an escaped exception is printed."""
    capsys.readouterr()
    escaped = ""
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as a user runs it: warnings are not errors
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        except Exception:
            code, escaped = 1, traceback.format_exc()
    captured = capsys.readouterr()
    return code, captured.out, captured.err + escaped


def run_contained(argv: list[str]) -> tuple[int, str, str]:
    """The same in a child process under the memory cap (a crash or a hang is contained)."""
    script = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({CHILD_MEMORY}, {CHILD_MEMORY}))\n"
        "from slidescope.app.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return -9, "", "Traceback: hung for more than 300 s"
    err = done.stderr
    if done.returncode < 0:
        err += f"\nTraceback: the process died of signal {-done.returncode}"
    return done.returncode, done.stdout, err


def output_problems(argv: list[str], out: str) -> list[str]:
    """What is wrong with a finished run's outputs (NaN figures, damaged model, failed slide)."""
    problems = [f"prints {m.group(0)!r}" for m in NON_FINITE.finditer(out)][:1]
    value = argv[argv.index("--out") + 1]
    if argv[0] == "train":
        from slidescope.models.checkpoints import load_checkpoint

        try:
            meta = load_checkpoint(value).meta
        except Exception as error:
            problems.append(f"the saved model does not load: {' '.join(str(error).split())}")
        else:
            if meta.threshold is not None and not 0.0 <= meta.threshold <= 1.0:
                problems.append(f"saved threshold {meta.threshold}")
    elif argv[0] == "evaluate":
        metrics = json.loads(Path(value).read_text())
        threshold = metrics.get("threshold")
        if isinstance(threshold, (int, float)) and not 0.0 <= threshold <= 1.0:
            problems.append(f"applies decision threshold {threshold}")
        for key, figure in metrics.items():
            if (
                isinstance(figure, dict)
                and figure.get("value") is None
                and (f"{key}: undefined" in out)
            ):
                continue  # said plainly: a one-class test set has no AUC
            if isinstance(figure, dict) and not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in figure.values()
            ):
                problems.append(f"metrics.json {key}: {figure}")
    elif argv[0] == "export":
        for path in Path(value).rglob("*.scores.csv"):
            if NON_FINITE.search(path.read_text()):
                problems.append(f"{path.name} holds NaN or Inf scores")
    return problems


def judge(case: Case, code: int, out: str, err: str, seconds: float) -> Outcome:
    """Classify one run (see the module docstring)."""
    command = case.argv[0]
    prefix = f"slidescope {command}: error:"
    lines = [line for line in err.splitlines() if line.strip()]
    if case.marker is not None and case.marker.exists():
        case.marker.unlink()
        return Outcome(case, "silent wrong result", "CODE FROM THE PICKLE RAN", seconds, err)
    if "Traceback" in err:
        last = next((ln for ln in reversed(lines) if not ln.startswith(" ")), "")
        return Outcome(case, "traceback", last.strip(), seconds, err)
    errors = [line for line in lines if line.startswith(prefix)]
    if code == 0:
        problems = output_problems(case.argv, out)
        first = next((ln for ln in out.splitlines() if ln.strip()), "")
        if case.accept and not problems:
            return Outcome(case, "handled", f"exit 0: {first}", seconds, err)
        return Outcome(
            case, "silent wrong result", "exit 0: " + "; ".join(problems or [first]), seconds, err
        )
    if len(errors) != 1:
        return Outcome(case, "vague error", f"exit {code}: {(lines or [''])[-1]}", seconds, err)
    text = errors[0][len(prefix) :].strip()
    raw = RAW_EXCEPTION.search(text)
    if raw:
        return Outcome(case, "traceback", f"raw {raw.group(1)}: {text}", seconds, err)
    if not any(word.lower() in text.lower() for word in case.names):
        return Outcome(case, "vague error", f"(names none of {case.names}) {text}", seconds, err)
    return Outcome(case, "clear error", text, seconds, err)


def run_case(case: Case, capsys: pytest.CaptureFixture[str]) -> Outcome:
    start = time.perf_counter()
    if case.contain:
        code, out, err = run_contained(case.argv)
    else:
        code, out, err = run_in_process(case.argv, capsys)
    return judge(case, code, out, err, time.perf_counter() - start)


def table(outcomes: list[Outcome]) -> str:
    width = max(len(o.case.name) for o in outcomes)
    lines = [f"{'case':<{width}}  {'command':<8}  {'outcome':<19}  {'s':>5}  first line"]
    for o in outcomes:
        message = o.message.splitlines()[0] if o.message else ""
        lines.append(
            f"{o.case.name:<{width}}  {o.case.argv[0]:<8}  {o.kind:<19}  {o.seconds:5.1f}  "
            f"{message[:150]}"
        )
    return "\n".join(lines)


@pytest.mark.timeout(1800)
def test_bad_ml_inputs_give_clear_errors(
    inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    controls = [
        Case("control: train", _train(inputs, _case_dir(tmp_path, "ok-train")), (), True),
        Case("control: evaluate", _evaluate(inputs, _case_dir(tmp_path, "ok-eval")), (), True),
        Case("control: export", _export(inputs, _case_dir(tmp_path, "ok-export")), (), True),
    ]
    checked = [run_case(case, capsys) for case in controls]
    with capsys.disabled():
        print("\n" + table(checked))
    # the judge must not flag good inputs, or the table below means nothing
    assert [o.kind for o in checked] == ["handled"] * 3, [(o.message, o.stderr) for o in checked]

    cases = [
        *checkpoint_cases(inputs, tmp_path),
        *train_setting_cases(inputs, tmp_path),
        *label_cases(inputs, tmp_path),
        *feature_cases(inputs, tmp_path),
    ]
    outcomes = []
    for case in cases:
        outcomes.append(run_case(case, capsys))
    counts = Counter(o.kind for o in outcomes)
    with capsys.disabled():
        print(f"\n{len(cases)} bad inputs:\n{table(outcomes)}\n")
        print(", ".join(f"{kind}: {counts[kind]}" for kind in OUTCOMES))
        for o in outcomes:
            if o.kind in ("traceback", "silent wrong result", "vague error"):
                print(f"\n[{o.kind}] {o.case.name}\n  slidescope {' '.join(o.case.argv)}")
                tail = "\n".join(o.stderr.strip().splitlines()[-6:])
                print("  " + (tail or o.message).replace("\n", "\n  "))
    bad = [o for o in outcomes if o.kind in ("traceback", "silent wrong result")]
    assert not bad, f"{len(bad)} bad inputs leak: " + "; ".join(
        f"{o.case.name} ({o.case.argv[0]}): {o.kind}" for o in bad
    )
