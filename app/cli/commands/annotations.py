"""``slidescope annotations import|export|summary``: a cohort's QuPath annotations in one go.

- ``import PROJECT FILE_OR_FOLDER...``: each ``<slide>.geojson`` (QuPath's export, also
  ``<slide>.svs.geojson``) goes to the project slide of that name, as
  ``annotations/<slide_id>.geojson``; repaired where safe, with a line per file saying what.
- ``export PROJECT --out FOLDER``: every slide's annotations as QuPath GeoJSON.
- ``summary PROJECT_OR_FILE``: counts, areas (mm²) and perimeters (µm) per slide and class.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

NAME = "annotations"
HELP = "Import, export and summarise annotations (QuPath GeoJSON) of a project's slides."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="read QuPath GeoJSON files into a project")
    imp.add_argument("project", type=Path, help="project folder")
    imp.add_argument("files", nargs="+", type=Path, help=".geojson files or folders of them")
    imp.add_argument("--slide", help="the slide id for a single file whose name differs")
    imp.add_argument(
        "--replace",
        action="store_true",
        help="replace each slide's annotations (default: add to them; same ids are updated)",
    )
    exp = actions.add_parser("export", help="write a project's annotations as QuPath GeoJSON")
    exp.add_argument("project", type=Path, help="project folder")
    exp.add_argument("--out", required=True, type=Path, help="output folder")
    exp.add_argument("--slide", action="append", help="only these slide ids (repeatable)")
    summary = actions.add_parser("summary", help="counts and areas per slide and class")
    summary.add_argument("source", type=Path, help="a project folder or a .geojson file")
    summary.add_argument("--slide", action="append", help="only these slide ids (repeatable)")
    summary.add_argument("--mpp", type=float, help="microns per pixel (for a lone file)")
    summary.add_argument("--csv", type=Path, help="also write the table as CSV")


def run(args: argparse.Namespace) -> int:
    return {"import": _import, "export": _export, "summary": _summary}[args.action](args)


def _geojson_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.name.lower().endswith(".geojson"))
        else:
            files.append(path)
    return files


def _slide_for(project: Any, file: Path) -> str | None:
    """The project slide a QuPath export belongs to, by name (``a.geojson``, ``a.svs.geojson``)."""
    from slidescope.app.project.project import is_slide_path

    ids = {e.slide_id for e in project.slides}
    stem = file.name[: -len(".geojson")] if file.name.lower().endswith(".geojson") else file.stem
    for candidate in (stem, Path(stem).stem if is_slide_path(stem) else None):
        if candidate in ids:
            return candidate
    entry = next((e for e in project.slides if Path(e.path).name == stem), None)
    return entry.slide_id if entry else None


def _import(args: argparse.Namespace) -> int:
    from slidescope.app.annotations.annotation_io import new_annotations
    from slidescope.app.annotations.classes import merge_classes
    from slidescope.app.annotations.geojson import read_annotations
    from slidescope.app.annotations.store import AnnotationStore
    from slidescope.app.errors import SlideScopeError
    from slidescope.app.project.project import Project

    project = Project.open(args.project)
    files = _geojson_files(args.files)
    if args.slide and len(files) != 1:
        print("slidescope annotations: --slide needs exactly one file", file=sys.stderr)
        return 2
    failed = 0
    for file in files:
        slide_id = args.slide or _slide_for(project, file)
        if slide_id is None:
            print(f"{file}: no slide of that name in the project; use --slide", file=sys.stderr)
            failed += 1
            continue
        try:
            identity = project.slide(slide_id).identity or {}
            size = (identity["width"], identity["height"]) if identity.get("width") else None
            imported, report = read_annotations(file, slide_dimensions=size)
            store = AnnotationStore.for_project(project, slide_id)
            current = store.load(slide_dimensions=size)
            project.classes = merge_classes(project.classes, report.classes)
            store.classes = project.classes
            repeated = 0
            if args.replace:
                current.replace_all(imported, what="import")
            else:  # a file imported twice adds nothing twice
                new, repeated = new_annotations(current, list(imported))
                current.add(new, what="import")
            store.save(current)
        except SlideScopeError as error:  # one bad file does not stop the cohort
            print(f"{file}: {error}", file=sys.stderr)
            failed += 1
            continue
        already = f"; {repeated} already in the project, not added again" if repeated else ""
        print(f"{report.summary()}{already} -> {store.path}")
    project.save()
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from slidescope.app.annotations.geojson import write_annotations
    from slidescope.app.annotations.store import AnnotationStore
    from slidescope.app.project.project import Project

    project = Project.open(args.project)
    for entry in project.slides:
        if args.slide and entry.slide_id not in args.slide:
            continue
        if not project.annotation_path(entry.slide_id).exists():
            continue
        store = AnnotationStore.for_project(project, entry.slide_id)
        annotations = store.load()
        out = write_annotations(
            args.out / f"{entry.slide_id}.geojson", annotations, project.classes, keep_backup=False
        )
        print(f"{out}: {len(annotations)} annotation(s)")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from slidescope.app.annotations.geojson import read_annotations
    from slidescope.app.annotations.store import AnnotationStore
    from slidescope.app.project.project import PROJECT_FILE, Project

    rows: list[tuple[str, str, int, float, float]] = []
    source: Path = args.source
    if source.is_dir() or source.name == PROJECT_FILE:
        project = Project.open(source)
        for entry in project.slides:
            if args.slide and entry.slide_id not in args.slide:
                continue
            if not project.annotation_path(entry.slide_id).exists():
                continue
            annotations = AnnotationStore.for_project(project, entry.slide_id).load()
            mpp = (entry.identity or {}).get("mpp") or args.mpp
            rows += _rows(entry.slide_id, annotations, mpp)
    else:
        annotations, _ = read_annotations(source)
        mpp = args.mpp or (annotations.slide_identity or {}).get("mpp")
        rows += _rows(source.stem, annotations, mpp)
    header = ("slide_id", "class", "count", "area_mm2", "perimeter_um")
    print(_table(header, rows))
    if args.csv:
        from slidescope.models.files import write_text_atomic

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        write_text_atomic(args.csv, buffer.getvalue())
    return 0


def _rows(slide_id: str, annotations: Any, mpp: Any) -> list[tuple[str, str, int, float, float]]:
    if mpp is not None and not isinstance(mpp, (int, float)):
        mpp = (float(mpp[0]), float(mpp[1]))
    measured = annotations.measurements(mpp)
    if mpp is None:
        print(
            f"{slide_id}: no microns per pixel known; sizes in pixels (pass --mpp)",
            file=sys.stderr,
        )
    return [
        (slide_id, name, m.count, round(m.area_mm2, 6), round(m.perimeter_um, 1))
        for name, m in sorted(measured.per_class.items())
    ]


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in header), *(tuple(str(c) for c in r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
