"""What a batch run reads: scan groups (pairs joined) and ``<name>_clean`` references
from folders, globs and files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import io
from .manifest import _failed_row
from .settings import REFERENCE_SUFFIX


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def group_name(group: Sequence[Path]) -> str:
    """The scan name of a group from :func:`io.scan_paths` (pair base or file stem)."""
    first = Path(group[0])
    if len(group) == 2:
        return io.pair_role(first)[0]
    stem = first.stem
    return stem[: -len(".ome")] if stem.lower().endswith(".ome") else stem


def collect_scans(
    inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> tuple[list[list[Path]], dict[str, list[Path]], list[dict]]:
    """``(scan groups, references by scan name, problem rows)`` for folders, globs and files.

    Folders contribute their TIFFs (not recursive); globs are expanded; pairs are joined
    (:func:`io.scan_paths`). Groups named ``<name>_clean`` become references of ``<name>``.
    Files inside ``out_dir`` are left out (a rerun must not take its outputs as inputs).
    A glob that matches nothing is a problem row.
    """
    files, problems = _input_files(inputs)
    if out_dir is not None:
        out = Path(out_dir).resolve()
        files = [f for f in files if not (f.exists() and f.resolve().parent == out)]
    return (*_split_references(files), problems)


def _input_files(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[dict]]:
    """(files, problem rows): folders' TIFFs, globs expanded, files as given."""
    files: list[Path] = []
    problems: list[dict] = []
    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            files.extend(
                sorted(
                    f for f in p.iterdir() if f.suffix.lower() in io.TIFF_SUFFIXES and f.is_file()
                )
            )
        elif _has_glob(text) and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                problems.append(
                    _failed_row(text, [text], f"No file matches '{text}'; check the pattern.")
                )
            files.extend(m for m in matches if m.suffix.lower() in io.TIFF_SUFFIXES)
        else:
            files.append(p)
    return files, problems


def _split_references(files: list[Path]) -> tuple[list[list[Path]], dict[str, list[Path]]]:
    """(scan groups, references by scan name) of ``files``, pairs joined."""
    groups, references = [], {}
    for group in io.scan_paths(files):
        name = group_name(group)
        if name.endswith(REFERENCE_SUFFIX) and len(name) > len(REFERENCE_SUFFIX):
            references[name[: -len(REFERENCE_SUFFIX)]] = list(group)
        else:
            groups.append(list(group))
    return groups, references
