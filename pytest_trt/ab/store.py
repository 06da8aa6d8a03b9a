"""The model files a baseline keeps beside itself, so a later job can measure "main" against a change
without checking main out (``trt_ab(reference=BASELINE)``).

With ``--trt-save-baseline PATH --trt-save-artifacts onnx,export`` each model's fp32 ONNX export
and/or ``torch.export`` program is written to ``PATH.artifacts/<sha256>.onnx|.pt2``: named by
content, so a run that saves the same model again writes nothing new and two workers writing at
once write the same bytes. The process that ran the case writes the file (it has the model); the
controller, which alone writes files that name other files, updates ``PATH.artifacts/index.json``
(model name → its files), under a lock and atomically, as the baseline itself.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt import atomic, jsonfile
from pytest_trt.context import Context
from pytest_trt.model import ModelSpec
from pytest_trt.records import JSON, CaseResult, CaseState, JSONDict

if TYPE_CHECKING:
    from pytest_trt.report import Run

INDEX = "index.json"
KINDS = {"onnx": ".onnx", "export": ".pt2"}
SCHEMA_VERSION = 1
LOCK_TIMEOUT_S = 120.0
MAX_BATCH = 4096  # the exported program's dynamic batch dimension


class StoreError(Exception):
    """An artifacts folder or index that cannot be used; the message names the file."""


def folder_of(path: Path) -> Path:
    """``base.json`` → ``base.json.artifacts``; a folder stays itself."""
    return path if path.is_dir() else path.with_name(path.name + ".artifacts")


def keep(ctx: Context, spec: ModelSpec, result: CaseResult) -> None:
    """Write the model's files for a timed case of a run that saves a baseline with artifacts;
    name them on the result (``build.artifacts``), which carries them to the controller."""
    from pytest_trt import remeasure

    settings = ctx.settings
    if not settings.save_artifacts or settings.save_baseline is None or remeasure.in_child():
        return
    if result.status is not CaseState.OK:
        return
    folder = folder_of(settings.save_baseline)
    if not result.build.model_hash:
        from pytest_trt.export import model_hash

        result.build.model_hash = model_hash(ctx.artifacts.module(spec), spec.input_shape)
    for kind in settings.save_artifacts:
        try:
            result.build.artifacts[kind] = _write(ctx, spec, kind, folder)
        except Exception as exc:  # an exporter's failure costs the artifact, never the case
            result.build.artifacts[f"{kind}_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


_WRITTEN: dict[tuple[str, str, str], str] = {}  # (folder, model name, kind) → file name, per process


def _write(ctx: Context, spec: ModelSpec, kind: str, folder: Path) -> str:
    key = (str(folder), spec.name, kind)
    if key not in _WRITTEN:
        with tempfile.TemporaryDirectory(prefix="pytest-trt-artifact-") as scratch:
            if kind == "onnx":
                source = ctx.artifacts.onnx(spec, "fp32")[0]
            else:
                source = Path(scratch) / "program.pt2"
                _export_program(ctx, spec, source)
            target = folder / f"{atomic.file_sha256(source)}{KINDS[kind]}"
            if not target.exists():
                with open(source, "rb") as handle:
                    atomic.write_with(target, lambda out: shutil.copyfileobj(handle, out))
        _WRITTEN[key] = target.name
    return _WRITTEN[key]


def _export_program(ctx: Context, spec: ModelSpec, target: Path) -> None:
    """``torch.export`` of the fp32 module with a dynamic batch dimension, saved to ``target``."""
    import torch

    module = ctx.artifacts.module(spec)
    example = torch.from_numpy(spec.example_inputs(2))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(target))


# -------------------------------------------------------------------- the index (controller)


def index_target(ctx: Context) -> Path | None:
    from pytest_trt import remeasure

    settings = ctx.settings
    if not settings.save_artifacts or settings.save_baseline is None or remeasure.in_child():
        return None
    return folder_of(settings.save_baseline) / INDEX


def register_writer() -> None:
    """The index is one more output of the run, written at its end with the others (once per process)."""
    from pytest_trt import report

    if not any(writer.name == WRITER for writer in report.WRITERS):
        report.register(report.Writer(WRITER, index_target, write_index))


WRITER = "A/B artifacts index"


def entries(results: Sequence[CaseResult]) -> dict[str, JSONDict]:
    """Model name → its files, from the results that kept some (the last result of a model wins)."""
    found: dict[str, JSONDict] = {}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for result in results:
        files = {k: v for k, v in result.build.artifacts.items() if k in KINDS}
        if files:
            entry: JSONDict = {"files": dict(files), "model_hash": result.build.model_hash, "saved": now,
                               "case": result.key or result.nodeid}
            found[result.model_name] = entry
    return found


def write_index(run: Run, path: Path) -> None:
    """Merge this run's models into the index at ``path`` under a lock."""
    from filelock import FileLock, Timeout

    found = entries(run.results)
    if not found:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            models = read_index(path.parent) if path.exists() else {}
            models.update(found)
            document: JSONDict = {"schema_version": SCHEMA_VERSION, "tool": "pytest-trt", "models": dict(models)}
            atomic.write_json(path, document)
    except Timeout:
        raise OSError(f"could not lock {lock.lock_file} within {LOCK_TIMEOUT_S:.0f} s") from None


def read_index(folder: Path) -> dict[str, JSON]:
    path = folder / INDEX
    try:
        data = jsonfile.read(path, "A/B artifacts index")
    except jsonfile.FileFormatError as exc:
        raise StoreError(str(exc)) from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or not isinstance(models, dict):
        raise StoreError(f"{path}: not a pytest-trt artifacts index (schema_version {SCHEMA_VERSION}, models)")
    return models


def lookup(folder: Path, model: str) -> Mapping[str, Path]:
    """The stored files of ``model``: {"onnx": path, "export": path}, each checked against its name."""
    models = read_index(folder)
    entry = models.get(model)
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, dict) or not files:
        known = ", ".join(sorted(models)) or "none"
        raise StoreError(f"{folder / INDEX}: no artifact for model {model!r} (models: {known}); save the baseline "
                         "with --trt-save-artifacts onnx,export")
    found: dict[str, Path] = {}
    for kind, name in files.items():
        path = folder / str(name)
        if kind not in KINDS or not path.is_file():
            raise StoreError(f"{path}: listed in {folder / INDEX} for model {model!r} but missing")
        if atomic.file_sha256(path) != path.stem:
            raise StoreError(f"{path}: its content does not match its name (sha256); the file was changed")
        found[kind] = path
    return found
