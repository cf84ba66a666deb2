"""Reading, validating and writing dual-energy 16-bit X-ray scans (numpy + tifffile only).

A *scan* is one bag seen by one or two detector energies. On disk it is one of:

* one TIFF holding both energies: two pages, one ``(2, Y, X)`` series, or an OME-TIFF
  whose channel names say which is which (``low``/``high``, ``LE``/``HE``; any case).
  Without names, index 0 is the low energy and index 1 the high energy;
* a pair of files ``<name>_low.tif`` + ``<name>_high.tif`` (also ``_le``/``_he`` and
  ``_l``/``_h``, any case, ``.tif`` or ``.tiff``);
* a single-energy TIFF (one channel, called ``image``);
* a TIFF written by this package with several named channels (low, high, results).

Arrays keep their dtype: 16-bit stays 16-bit. Axes are ``(Y, X)`` per channel and
``(channel, Y, X)`` for stacks, channel 0 = low energy.

Every problem with a file that is meant to be a scan raises :class:`ScanReadError`
(a ``ValueError``) with one sentence saying what is wrong and what to do. Writes are
atomic: a temporary file in the same folder is renamed over the target only once it
is complete, so a failed write leaves no partial file and never damages an old one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from . import __version__
from .bands import EdgeBands, find_edge_bands

TIFF_SUFFIXES = (".tif", ".tiff")
METADATA_KEY = "napari_xray_denoise"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# <name>_<role>.tif; the role suffix decides the energy. Longest alternatives first.
_PAIR_RE = re.compile(r"^(?P<base>.+)_(?P<role>low|high|le|he|l|h)$", re.IGNORECASE)
_ROLE_ENERGY = {"low": "low", "le": "low", "l": "low", "high": "high", "he": "high", "h": "high"}
_PARTNER_ROLE = {"low": "high", "high": "low", "le": "he", "he": "le", "l": "h", "h": "l"}
_LOW_NAMES = {
    "low",
    "le",
    "l",
    "lowenergy",
    "low_energy",
    "low-energy",
    "low energy",
    "low-kv",
    "low kv",
}
_HIGH_NAMES = {
    "high",
    "he",
    "h",
    "highenergy",
    "high_energy",
    "high-energy",
    "high energy",
    "high-kv",
    "high kv",
}

_KEPT_TAGS = (
    "Software",
    "DateTime",
    "Make",
    "Model",
    "Artist",
    "HostComputer",
    "XResolution",
    "YResolution",
    "ResolutionUnit",
    "BitsPerSample",
    "Compression",
)


_log = logging.getLogger(__name__)


class ScanReadError(ValueError):
    """A file that should be a scan cannot be used; the message says why and what to do."""


class ScanWriteError(OSError):
    """Writing an output failed; nothing partial was left behind."""


@dataclass
class Scan:
    """One bag: named channels of equal shape plus metadata.

    ``channels`` maps a role (``"low"``, ``"high"``, ``"image"`` for single-energy
    scans, or any name written by this package) to a 2-D array, in file order.
    ``meta`` holds ``source_paths``, ``bit_depth``, ``effective_bits`` (of the image part),
    ``edge_bands`` (non-image rows/columns at the edges, see :mod:`.bands`), ``tiff_tags``
    and the processing ``history`` read back from files this package wrote.
    """

    name: str
    channels: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def low(self) -> np.ndarray | None:
        return self.channels.get("low")

    @property
    def high(self) -> np.ndarray | None:
        return self.channels.get("high")

    @property
    def is_dual(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.channels.values())).shape

    def stack(self) -> np.ndarray:
        """The dual-energy stack ``(2, Y, X)`` (low, high), in the file's dtype."""
        if not self.is_dual:
            raise ScanReadError(
                f"'{self.name}' is a single-energy scan but this needs both energies; "
                "open a dual-energy TIFF or a <name>_low/<name>_high pair."
            )
        return np.stack([self.low, self.high])

    def images(self) -> np.ndarray:
        """All channels as ``(C, Y, X)``: the stack for dual scans, ``(1, Y, X)`` otherwise."""
        if self.is_dual:
            return self.stack()
        return np.stack(list(self.channels.values()))


# --------------------------------------------------------------------------- detection


def is_tiff_file(path: str | os.PathLike) -> bool:
    """Cheap check: a regular file with a TIFF suffix and a TIFF/BigTIFF magic number."""
    p = Path(path)
    if p.suffix.lower() not in TIFF_SUFFIXES or not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:
            return fh.read(4) in _TIFF_MAGICS
    except OSError:
        return False


def pair_role(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(base, role)`` if the file name looks like one half of a low/high pair."""
    p = Path(path)
    if p.suffix.lower() not in TIFF_SUFFIXES:
        return None
    m = _PAIR_RE.match(p.stem)
    if m is None:
        return None
    return m.group("base"), m.group("role")


def find_partner(path: str | os.PathLike) -> Path | None:
    """The other half of a ``_low``/``_high`` pair in the same folder, or None."""
    p = Path(path)
    parsed = pair_role(p)
    if parsed is None:
        return None
    base, role = parsed
    wanted = _PARTNER_ROLE[role.lower()]
    for candidate in sorted(p.parent.iterdir()):
        other = pair_role(candidate)
        if other and other[0] == base and other[1].lower() == wanted and candidate.is_file():
            return candidate
    return None


def scan_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[list[Path]]:
    """Group paths (files or folders) into scans: each group is one file or a pair.

    A pair is listed once however many of its files are given. Folders contribute every
    TIFF inside them (not recursive), sorted by name.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files.extend(
                sorted(f for f in p.iterdir() if f.suffix.lower() in TIFF_SUFFIXES and f.is_file())
            )
        else:
            files.append(p)
    groups: list[list[Path]] = []
    seen: set[Path] = set()
    for f in files:
        key = f.resolve() if f.exists() else f.absolute()
        if key in seen:
            continue
        seen.add(key)
        partner = find_partner(f) if f.exists() else None
        if partner is not None:
            seen.add(partner.resolve())
            group = [f, partner]
            # low first
            if _ROLE_ENERGY[pair_role(f)[1].lower()] == "high":
                group.reverse()
            groups.append(group)
        else:
            groups.append([f])
    return groups


# --------------------------------------------------------------------------- reading


def read_scan(path: str | os.PathLike) -> Scan:
    """Read one scan from a TIFF, or from a ``_low``/``_high`` pair given either half.

    Raises :class:`ScanReadError` with a one-sentence explanation for anything that is
    not a usable raw scan.
    """
    p = Path(path)
    if p.is_dir():
        raise ScanReadError(f"'{p}' is a folder; use read_folder() to read every scan in it.")
    parsed = pair_role(p)
    if parsed is not None:
        partner = find_partner(p)
        if partner is None:
            if not p.exists():
                raise ScanReadError(f"File '{p}' does not exist; check the path.")
            base, role = parsed
            partner_role = _PARTNER_ROLE[role.lower()]
            missing = f"{base}_{partner_role.upper() if role.isupper() else partner_role}"
            raise ScanReadError(
                f"'{p.name}' is one half of a low/high pair but its partner ('{missing}.tif') "
                f"is not in '{p.parent}'; put both files in the same folder."
            )
        return _read_pair(p, partner)
    return _read_single_file(p)


def read_scans(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Scan]:
    """Read every scan named by ``paths`` (files, pairs and folders), each once."""
    return [read_group(group) for group in scan_paths(paths)]


def read_group(group: Sequence[Path]) -> Scan:
    """One group of :func:`scan_paths`: a single file, or a (low, high) pair."""
    return _read_pair(*group) if len(group) == 2 else read_scan(group[0])


def read_folder(folder: str | os.PathLike) -> list[Scan]:
    """Every scan in a folder (a training set); pairs are joined."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScanReadError(f"'{folder}' is not a folder; give a folder of TIFF scans.")
    scans = read_scans([folder])
    if not scans:
        raise ScanReadError(f"Folder '{folder}' holds no .tif/.tiff files; put scans in it.")
    return scans


def _read_pair(first: Path, second: Path) -> Scan:
    roles = {}
    for f in (first, second):
        role = _ROLE_ENERGY[pair_role(f)[1].lower()]
        scan = _read_single_file(f)
        if len(scan.channels) != 1:
            raise ScanReadError(
                f"'{f.name}' should hold one energy image (it is half of a pair) but holds "
                f"{len(scan.channels)}; open it on its own instead."
            )
        roles[role] = (f, scan)
    if set(roles) != {"low", "high"}:
        raise ScanReadError(
            f"'{first.name}' and '{second.name}' do not form a low/high pair; name them "
            "<name>_low.tif and <name>_high.tif."
        )
    (lf, low), (hf, high) = roles["low"], roles["high"]
    low_img, high_img = next(iter(low.channels.values())), next(iter(high.channels.values()))
    if low_img.shape != high_img.shape:
        raise ScanReadError(
            f"Low and high energy images differ in shape: '{lf.name}' is {low_img.shape} and "
            f"'{hf.name}' is {high_img.shape}; both energies must come from the same scan."
        )
    if low_img.dtype != high_img.dtype:
        raise ScanReadError(
            f"Low and high energy images differ in type: '{lf.name}' is {low_img.dtype} and "
            f"'{hf.name}' is {high_img.dtype}; export both from the scanner the same way."
        )
    base = pair_role(lf)[0]
    meta = dict(low.meta)
    meta["source_paths"] = [str(lf), str(hf)]
    meta["layout"] = "pair"
    bands = EdgeBands.from_dict(low.meta["edge_bands"]).union(
        EdgeBands.from_dict(high.meta["edge_bands"])
    )
    meta["edge_bands"] = bands.as_dict()
    meta["effective_bits"] = _effective_bits(bands.interior(a) for a in (low_img, high_img))
    return Scan(base, {"low": low_img, "high": high_img}, meta)


def _read_single_file(path: Path) -> Scan:
    if not path.exists():
        raise ScanReadError(f"File '{path}' does not exist; check the path.")
    if path.stat().st_size == 0:
        raise ScanReadError(
            f"'{path.name}' is empty (0 bytes); the file was not written completely."
        )
    if not is_tiff_file(path):
        raise ScanReadError(f"'{path.name}' is not a TIFF file; open a .tif/.tiff scan.")
    try:
        with _tifffile_log_to_debug(), tifffile.TiffFile(path) as tif:
            arrays, names, description = _series_arrays(tif, path)
            tags = _kept_tags(tif)
    except ScanReadError:
        raise
    except Exception as exc:  # tifffile raises many types on damaged files
        raise ScanReadError(
            f"'{path.name}' is damaged or truncated and cannot be read ({type(exc).__name__}); "
            "export the scan again."
        ) from exc

    channels = _assign_roles(arrays, names, path)
    for name, arr in channels.items():
        channels[name] = _validate_image(arr, path, name)
    history = description.get("history", []) if description else []
    bands = find_edge_bands(list(channels.values()))  # non-image edges: out of the bit depth
    meta: dict[str, Any] = {
        "source_paths": [str(path)],
        "layout": "single-file",
        "bit_depth": int(np.dtype(next(iter(channels.values())).dtype).itemsize * 8),
        "effective_bits": _effective_bits(bands.interior(a) for a in channels.values()),
        "edge_bands": bands.as_dict(),
        "tiff_tags": tags,
        "history": history,
    }
    return Scan(_scan_name(path), channels, meta)


def _scan_name(path: Path) -> str:
    name = path.stem
    return name[: -len(".ome")] if name.lower().endswith(".ome") else name


def _series_arrays(
    tif: tifffile.TiffFile, path: Path
) -> tuple[list[np.ndarray], list[str] | None, dict]:
    """Images of the file as a list of 2-D arrays, their channel names if known."""
    if not tif.pages:
        raise ScanReadError(f"'{path.name}' holds no images; export the scan again.")
    page0 = tif.pages.first
    photometric = getattr(page0, "photometric", None)
    if photometric in (
        tifffile.PHOTOMETRIC.RGB,
        tifffile.PHOTOMETRIC.PALETTE,
        tifffile.PHOTOMETRIC.YCBCR,
    ):
        raise ScanReadError(
            f"'{path.name}' is a colour (RGB or palette) image, not a raw scan; open the "
            "scanner's raw 16-bit grayscale export instead."
        )
    description = _our_description(tif)
    names = description.get("channels") if description else None
    if names is None:
        names = _ome_channel_names(tif) or _imagej_labels(tif)

    series = tif.series
    _check_memory(series, path)
    arrays: list[np.ndarray] = []
    for s in series:
        data = s.asarray()
        if data.size == 0:
            raise ScanReadError(f"'{path.name}' holds a zero-size image; export the scan again.")
        axes = s.axes
        while data.ndim > 2 and data.shape[0] == 1:  # drop leading singleton axes only
            data = data[0]
        if data.ndim == 2:
            arrays.append(data)
        elif data.ndim == 3 and (
            axes.endswith("S") or data.shape[-1] in (3, 4) and data.shape[0] > 4
        ):
            raise ScanReadError(
                f"'{path.name}' holds colour samples per pixel (shape {data.shape}), not a raw "
                "scan; open the scanner's raw 16-bit grayscale export instead."
            )
        elif data.ndim == 3:
            arrays.extend(list(data))
        else:
            raise ScanReadError(
                f"'{path.name}' has an image of shape {data.shape}; expected one or two 2-D "
                "energy images (Y, X) or a (2, Y, X) stack."
            )
    if not arrays:
        raise ScanReadError(f"'{path.name}' holds no images; export the scan again.")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ScanReadError(
            f"The energy images in '{path.name}' differ in shape ({', '.join(map(str, [a.shape for a in arrays]))}); "
            "both energies must come from the same scan."
        )
    if names is not None and len(names) != len(arrays):
        names = None
    return arrays, names, description or {}


def available_memory_bytes() -> int | None:
    """Memory this process may still allocate: the system's available memory, capped by
    the process's address-space limit (``ulimit -v``); None where unknown."""
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(int(soft))
    except (ImportError, AttributeError, ValueError, OSError):
        pass
    return min(limits) if limits else None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _check_memory(series, path: Path) -> None:
    """Refuse a file whose header claims more pixels than this machine can hold, before
    anything is allocated (a damaged header or a scan too big for this machine)."""
    needed = sum(
        int(np.prod(s.shape, dtype=np.float64)) * np.dtype(s.dtype).itemsize for s in series
    )
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    largest = max(series, key=lambda s: int(np.prod(s.shape, dtype=np.float64)))
    shape = "x".join(str(n) for n in largest.shape)
    raise ScanReadError(
        f"'{path.name}' claims a {shape} {np.dtype(largest.dtype)} image ({_gib(needed)} in all) but this "
        f"machine has {_gib(available)} of memory available; the header may be damaged, or open the scan "
        "on a machine with more memory."
    )


class _TifffileToDebug(logging.Handler):
    """Re-log tifffile's records (``invalid page offset``...) as DEBUG lines of this module."""

    def emit(self, record: logging.LogRecord) -> None:
        _log.debug("tifffile %s: %s", record.levelname.lower(), record.getMessage())


@contextlib.contextmanager
def _tifffile_log_to_debug():
    """While reading, tifffile's log lines go to this module's logger at DEBUG level
    (quiet by default; ``xray-denoise --verbose`` shows them) instead of the console."""
    logger = logging.getLogger("tifffile")
    handler, propagate = _TifffileToDebug(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _assign_roles(
    arrays: list[np.ndarray], names: list[str] | None, path: Path
) -> dict[str, np.ndarray]:
    if len(arrays) == 1:
        name = names[0] if names else "image"
        role = _role_from_name(name)
        return {role or name: arrays[0]} if names else {"image": arrays[0]}
    if names:
        roles = [_role_from_name(n) or n for n in names]
        if len(set(roles)) == len(roles):
            if len(arrays) == 2 and set(roles) != {"low", "high"}:
                roles = ["low", "high"]  # unnamed roles: index 0 = low
            channels = dict(zip(roles, arrays, strict=True))
            return _low_high_first(channels)
    if len(arrays) == 2:
        return {"low": arrays[0], "high": arrays[1]}
    return {f"channel {i}": a for i, a in enumerate(arrays)}


def _low_high_first(channels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = [k for k in ("low", "high") if k in channels] + [
        k for k in channels if k not in ("low", "high")
    ]
    return {k: channels[k] for k in order}


def _role_from_name(name: str) -> str | None:
    n = str(name).strip().lower()
    last = n.split()[-1] if n.split() else n
    if n in _LOW_NAMES or last in _LOW_NAMES:
        return "low"
    if n in _HIGH_NAMES or last in _HIGH_NAMES:
        return "high"
    return None


def _validate_image(arr: np.ndarray, path: Path, name: str) -> np.ndarray:
    if arr.size == 0 or 0 in arr.shape:
        raise ScanReadError(f"'{path.name}' holds a zero-size image; export the scan again.")
    kind = arr.dtype.kind
    if kind == "u" and arr.dtype.itemsize <= 2:
        return arr
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ScanReadError(
                f"'{path.name}' ({name}) holds {arr.dtype} values from {lo} to {hi}, outside the "
                "16-bit range 0..65535; export raw 16-bit counts."
            )
        return arr.astype(np.uint16)
    if kind == "f":
        if not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise ScanReadError(
                f"'{path.name}' ({name}) contains {bad} NaN or infinite values; replace them "
                "(for example with the nearest valid value) before denoising."
            )
        return arr
    if kind == "b":
        raise ScanReadError(
            f"'{path.name}' is a binary (1-bit) mask, not a scan; open a 16-bit raw scan."
        )
    raise ScanReadError(
        f"'{path.name}' has unsupported pixel type {arr.dtype}; export 8- or 16-bit unsigned "
        "integer (or float) grayscale."
    )


def _effective_bits(arrays: Iterable[np.ndarray]) -> int:
    """Bits actually used (12 for a 12-bit scanner in a 16-bit file)."""
    top = 0.0
    for a in arrays:
        top = max(top, float(a.max()))
    return max(1, int(np.ceil(np.log2(top + 1)))) if top > 0 else 1


def _our_description(tif: tifffile.TiffFile) -> dict | None:
    """The JSON metadata this package writes (tifffile's shaped description), if any."""
    meta = tif.shaped_metadata
    if meta:
        for m in meta:
            if isinstance(m, dict) and METADATA_KEY in m:
                return m
    try:
        desc = tif.pages.first.description
        parsed = json.loads(desc) if desc and desc.lstrip().startswith("{") else None
    except (ValueError, AttributeError):
        parsed = None
    if isinstance(parsed, dict) and METADATA_KEY in parsed:
        return parsed
    return None


def _ome_channel_names(tif: tifffile.TiffFile) -> list[str] | None:
    if not tif.is_ome or not tif.ome_metadata:
        return None
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError:
        return None
    names = [
        el.get("Name") for el in root.iter() if el.tag.endswith("}Channel") or el.tag == "Channel"
    ]
    return names if names and all(names) else None


def _imagej_labels(tif: tifffile.TiffFile) -> list[str] | None:
    ij = tif.imagej_metadata
    if ij and isinstance(ij.get("Labels"), (list, tuple)):
        return list(ij["Labels"])
    return None


def _kept_tags(tif: tifffile.TiffFile) -> dict[str, Any]:
    tags = {}
    for tag in tif.pages.first.tags.values():
        if tag.name in _KEPT_TAGS:
            value = tag.value
            if isinstance(value, bytes):
                value = value.decode("latin-1", "replace")
            elif hasattr(value, "name"):  # enums
                value = value.name
            elif isinstance(value, tuple):
                value = list(value)
            tags[tag.name] = value
    desc = tif.pages.first.description
    if desc and not desc.lstrip().startswith(("{", "<")):
        tags["ImageDescription"] = desc[:2000]
    return tags


# --------------------------------------------------------------------------- conversion


def to_uint16(image: np.ndarray, count_scale: float = 1.0) -> np.ndarray:
    """Counts as uint16: ``round(image * count_scale)`` clipped to 0..65535.

    ``image`` in uint8/uint16 is returned unchanged (uint8 widened without rescaling:
    its values are counts too). Float images must be finite.
    """
    image = np.asarray(image)
    if image.dtype == np.uint16:
        return image
    if image.dtype.kind in "iu":
        return np.clip(image, 0, 65535).astype(np.uint16)
    if image.dtype.kind != "f":
        raise ValueError(
            f"Cannot write pixel type {image.dtype} as a 16-bit image; convert it to numbers first."
        )
    if not np.isfinite(image).all():
        raise ValueError("The image contains NaN or infinite values; replace them before saving.")
    out = np.rint(image.astype(np.float64) * count_scale)
    return np.clip(out, 0, 65535).astype(np.uint16)


def count_scale_for(image: np.ndarray, meta: Mapping[str, Any] | None = None) -> float:
    """The factor that turns a float layer into 16-bit counts.

    The layer metadata records it as ``count_scale`` (1.0 for images already in counts).
    Without it, floats within [0, 1] are fractions of the 16-bit range (scale 65535) and
    anything else is taken as counts (scale 1).
    """
    if meta and "count_scale" in meta:
        return float(meta["count_scale"])
    image = np.asarray(image)
    if (
        image.dtype.kind == "f"
        and image.size
        and np.isfinite(image).all()
        and image.min() >= 0
        and image.max() <= 1.0
    ):
        return 65535.0
    return 1.0


def history_entry(operation: str, **params: Any) -> dict[str, Any]:
    """One processing step for the history stored in written files."""
    return {
        "operation": operation,
        "parameters": _jsonable(params),
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def denoise_history_entry(
    model_name: str, metadata: Mapping[str, Any], noise_used: Any
) -> dict[str, Any]:
    """The ``denoise`` step: the model, its method and mode, and the noise actually used.

    ``noise_used`` is what the denoiser applied to this scan (``Denoiser.last_noise``:
    per channel, fitted on the scan by default), not the noise the model was trained on.
    """
    return history_entry(
        "denoise",
        model=model_name,
        method=metadata.get("method"),
        mode=metadata.get("mode"),
        noise=noise_used,
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"<array {obj.shape} {obj.dtype}>"
    if isinstance(obj, os.PathLike):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


# --------------------------------------------------------------------------- writing


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write_fn, *, suffix: str = ".part") -> Path:
    """Call ``write_fn(tmp_path)`` then rename the temporary file to ``path``.

    ``suffix`` ends the temporary name (some writers insist on an extension).

    On any failure the temporary file is removed and the existing ``path`` (if any) is
    untouched; disk-full and permission problems become :class:`ScanWriteError`.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ScanWriteError(
            f"Folder '{folder}' does not exist; create it or choose another output folder."
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise ScanWriteError(
                f"Not enough disk space to write '{path.name}'; free some space or choose "
                "another folder (nothing was written)."
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ScanWriteError(
                f"No permission to write '{path}'; choose a folder you can write to."
            ) from exc
        raise ScanWriteError(
            f"Could not write '{path.name}' ({exc.strerror or exc}); nothing was written."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_tiff(
    path: str | os.PathLike,
    images: np.ndarray | Sequence[np.ndarray],
    *,
    channel_names: Sequence[str] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    count_scale: float | Sequence[float] = 1.0,
    extra: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> Path:
    """Write one or more equal-shape 2-D images as a 16-bit (multi-page) TIFF, atomically.

    Float images are converted to counts with :func:`to_uint16` and ``count_scale``.
    Channel names and the processing history are stored as JSON in the TIFF
    description and read back by :func:`read_scan`.
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("Nothing to write: no images were given.")
    scales = list(count_scale) if isinstance(count_scale, Sequence) else [count_scale] * len(images)
    shapes = {np.shape(im) for im in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(
            f"All images written to one TIFF must be 2-D and the same shape; got {[np.shape(i) for i in images]}."
        )
    stack = np.stack([to_uint16(im, s) for im, s in zip(images, scales, strict=True)])
    names = (
        list(channel_names)
        if channel_names is not None
        else (
            ["low", "high"]
            if len(images) == 2
            else ["image"] * (len(images) == 1) or [f"channel {i}" for i in range(len(images))]
        )
    )
    if len(names) != len(images):
        raise ValueError(f"{len(names)} channel names given for {len(images)} images.")
    metadata = {
        "axes": "CYX" if len(images) > 1 else "YX",
        METADATA_KEY: __version__,
        "channels": names,
        "history": _jsonable(list(history)),
    }
    if extra:
        metadata.update(_jsonable(dict(extra)))
    data = stack if len(images) > 1 else stack[0]

    def _write(tmp: Path) -> None:
        tifffile.imwrite(
            tmp,
            data,
            photometric="minisblack",
            metadata=metadata,
            software=f"napari-xray-denoise {__version__}",
            compression="zlib" if compress else None,
        )

    return atomic_write(path, _write)


def write_rgb(
    path: str | os.PathLike, rgb: np.ndarray, *, history: Sequence[Mapping[str, Any]] = ()
) -> Path:
    """Write an (Y, X, 3|4) colour image as 8-bit RGB(A) TIFF or PNG (by suffix), atomically.

    Colour images are display products, so 8 bits per sample is their natural depth;
    float colours in [0, 1] are scaled to 0..255.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"A colour image must have shape (Y, X, 3) or (Y, X, 4); got {rgb.shape}.")
    if rgb.dtype.kind == "f":
        if not np.isfinite(rgb).all():
            raise ValueError(
                "The colour image contains NaN or infinite values; replace them before saving."
            )
        top = 255.0 if rgb.max() > 1.0 else 1.0
        rgb8 = np.clip(np.rint(rgb / top * 255.0), 0, 255).astype(np.uint8)
    elif rgb.dtype == np.uint16:
        rgb8 = (rgb.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    else:
        rgb8 = np.clip(rgb, 0, 255).astype(np.uint8)
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        from PIL import Image

        info = None
        if history:
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_text(
                "Description",
                json.dumps({METADATA_KEY: __version__, "history": _jsonable(list(history))}),
            )

        def _write(tmp: Path) -> None:
            Image.fromarray(rgb8).save(tmp, format="PNG", pnginfo=info)
    elif suffix in TIFF_SUFFIXES:
        metadata = {METADATA_KEY: __version__, "history": _jsonable(list(history))}

        def _write(tmp: Path) -> None:
            tifffile.imwrite(tmp, rgb8, photometric="rgb", metadata=metadata)
    else:
        raise ValueError(f"Colour images are written as .png or .tif, not '{suffix}'.")
    return atomic_write(path, _write)
