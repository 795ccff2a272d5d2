"""Remake ``demo_model.safetensors``: the bundled demo checkpoint, end to end.

Run ``make demo-model`` or ``python tools/make_demo_model.py`` (a build script: it lives
outside the package, as ``resources`` holds data only). It uses nothing but SlideScope's
own command line, exactly as a user would:

1. ``slidescope demo-slide`` writes procedural H&E demo slides of varied sizes, seeds
   and lesion counts (one-lesion slides, whose lesion may be small, on purpose; slides
   without lesions); none is a seed the demo or the tests show;
2. ``slidescope extract --extractor builtin`` extracts their patch features;
3. ``slidescope train`` trains an ABMIL model on the labels "lesion present or not";
4. the checkpoint is copied here with ``demo_model.json``, which records how it was made.

Options: ``--work DIR`` keeps the slides and features (default: a temporary folder),
``--out DIR`` writes elsewhere than the package's resources folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: seeds are tried from FIRST_SEED upwards until each (label, split) has its count; a
#: seed's lesion count is known before drawing (``planned_lesion_count``) and its label
#: read from the outlines the generator writes ("lesion" if any, else "normal")
FIRST_SEED = 1000
PER_LABEL = {"train": 7, "val": 2}
#: at least this many of the training lesion slides have exactly one lesion: a model
#: trained on many-lesion slides learns "lots of dense tissue", not "a lesion"
ONE_LESION_TRAIN = 4
#: slide sizes, taken in turn: the model must not learn one slide size or tissue amount
SIZES = ((8_192, 6_144), (10_240, 8_192), (12_288, 9_216))
#: the size the unseen-seed test of tests/app/test_demo_model.py draws
WIDTH, HEIGHT, SLIDE_MPP = 10_240, 8_192, 0.25
#: patch geometry: 128 px at 0.5 µm/px = 256 level-0 px, a fine heatmap on small slides
PATCH_PX, TARGET_MPP = 128, 0.5
MODEL = "abmil"
TRAIN_ARGS = (
    "--method",
    "plain",
    "--epochs",
    "40",
    "--patience",
    "0",
    # four validation slides tie on AUC from the first epochs on: without a floor the
    # kept epoch is an early, barely trained one
    "--min-epochs",
    "30",
    "--lr",
    "5e-4",
    "--seed",
    "0",
)
#: seeds the model never saw, shown by the demo and checked by tests/app/test_demo_model.py
UNSEEN_SEEDS = (7, 2024)

#: the package's resources folder, where the checkpoint goes
HERE = Path(__file__).resolve().parent.parent / "resources"


def slidescope(*args: str) -> None:
    """Run one ``slidescope`` command in this process; stop on failure."""
    from slidescope.app.cli import main

    print("$ slidescope " + " ".join(args), flush=True)
    status = main(list(args))
    if status != 0:
        raise SystemExit(f"slidescope {args[0]} failed with status {status}")


def make(work: Path, out: Path) -> dict[str, object]:
    """Make the checkpoint in ``out`` from slides and features in ``work``; returns the record."""
    start, cpu_start = time.perf_counter(), time.process_time()
    slides, features = work / "slides", work / "features"
    slides.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    seeds: list[tuple[int, str, str]] = []
    wanted = {
        (label, split): n for split, n in PER_LABEL.items() for label in ("lesion", "normal")
    }
    from slidescope.app.demo.layout import planned_lesion_count

    sizes: dict[int, tuple[int, int]] = {}
    one_lesion = 0
    seed = FIRST_SEED
    while any(wanted.values()):
        count = planned_lesion_count(seed)
        label = "lesion" if count else "normal"
        split = next((sp for (lb, sp), n in wanted.items() if lb == label and n > 0), None)
        needs_one = split == "train" and label == "lesion" and one_lesion < ONE_LESION_TRAIN
        # keep the first training lesion slides for one-lesion seeds until there are enough
        if split is None or (
            needs_one and count != 1 and wanted[(label, split)] <= ONE_LESION_TRAIN - one_lesion
        ):
            seed += 1
            continue
        one_lesion += int(split == "train" and count == 1)
        width, height = SIZES[len(seeds) % len(SIZES)]
        path = slides / f"demo_{seed}.tiff"
        if not path.exists():
            slidescope(
                "demo-slide", str(path), "--width", str(width), "--height", str(height),
                "--seed", str(seed), "--mpp", str(SLIDE_MPP), "--quiet",
            )  # fmt: skip
        lesions = json.loads(path.with_name(f"{path.stem}.lesions.geojson").read_text())
        assert bool(lesions["features"]) == (label == "lesion"), seed
        wanted[(label, split)] -= 1
        seeds.append((seed, label, split))
        sizes[seed] = (width, height)
        rows.append(f"demo_{seed},{label},{split}")
        seed += 1
    made_slides = time.perf_counter()
    slidescope(
        "extract", *(str(slides / f"demo_{s}.tiff") for s, _, _ in seeds), "--out", str(features),
        "--extractor", "builtin", "--patch", str(PATCH_PX), "--target-mpp", str(TARGET_MPP),
    )  # fmt: skip
    extracted = time.perf_counter()
    labels = work / "labels.csv"
    labels.write_text("slide_id,label,split\n" + "\n".join(rows) + "\n")
    checkpoint = work / "demo_model.safetensors"
    slidescope(
        "train", "--features", str(features), "--labels", str(labels), "--model", MODEL,
        "--out", str(checkpoint), *TRAIN_ARGS, "--quiet",
    )  # fmt: skip
    trained = time.perf_counter()

    from slidescope.models.checkpoints import read_meta

    meta = read_meta(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "demo_model.safetensors"
    shutil.copyfile(checkpoint, target)
    record = {
        "what": "SlideScope demo checkpoint: ABMIL on builtin features, lesion vs normal",
        "remake": "make demo-model  (python tools/make_demo_model.py)",
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "bytes": target.stat().st_size,
        "architecture": meta.architecture,
        "class_names": meta.class_names,
        "extractor": meta.extractor,
        "patch_size": meta.patch_size,
        "target_mpp": meta.target_mpp,
        "demo_slides": {
            "generator": "slidescope demo-slide",
            "width": WIDTH,
            "height": HEIGHT,
            "mpp": SLIDE_MPP,
            "seeds": [
                {
                    "seed": sd,
                    "label": lb,
                    "split": sp,
                    "width": sizes[sd][0],
                    "height": sizes[sd][1],
                    "lesions": planned_lesion_count(sd),
                }
                for sd, lb, sp in seeds
            ],
            "label": "lesion if the slide has at least one planted lesion, else normal",
            "unseen_seeds_for_demo_and_tests": list(UNSEEN_SEEDS),
        },
        "commands": {
            "extract": f"slidescope extract SLIDES --out FEATURES --extractor builtin --patch {PATCH_PX} --target-mpp {TARGET_MPP}",
            "train": "slidescope train --features FEATURES --labels labels.csv "
            f"--model {MODEL} --out demo_model.safetensors {' '.join(TRAIN_ARGS)}",
        },
        "training": meta.training,
        "metrics": meta.metrics,
        "seconds": {
            "slides": round(made_slides - start, 1),
            "extract": round(extracted - made_slides, 1),
            "train": round(trained - extracted, 1),
            "total": round(trained - start, 1),
            # CPU seconds of this process and its threads: what the work costs on an idle
            # machine, whatever else shared the cores meanwhile
            "cpu_total": round(time.process_time() - cpu_start, 1),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
    }
    (out / "demo_model.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="keep slides and features here")
    parser.add_argument("--out", type=Path, default=HERE, help="where the checkpoint goes")
    args = parser.parse_args(argv)
    if args.work is not None:
        record = make(args.work, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="slidescope-demo-model-") as tmp:
            record = make(Path(tmp), args.out)
    print(json.dumps({k: record[k] for k in ("sha256", "bytes", "metrics", "seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
