"""Split an acquisition into 2-D frames, page by page with tifffile: never the whole file in memory.

Supported inputs (all local paths; the asset copies remote objects to a temp folder first):
- OME-TIFF (axes from the series, channel names, physical sizes and per-plane metadata from the
  OME-XML); several series in one file, or a multi-file set (one file per position), are positions;
- Micro-Manager NDTiff (indices and per-frame metadata from NDTiff.index; the metadata is the JSON
  the TIFF carries in tag 51123) and MMStack files (IndexMap and tag 51123);
- a folder of single-frame TIFFs, named as Micro-Manager names them (with metadata.txt when present);
- a plain multi-page TIFF whose ImageDescription carries the axes (tifffile's shaped JSON, ImageJ).

Each frame is (c, z, t, p), its channel name, a 2-D array and its per-frame metadata (a dict).
Position axis: tifffile calls it `R` in Micro-Manager series; `P` is accepted too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from imaging_assets.core.errors import InputError

AXIS_NAMES = {"T": "t", "C": "c", "Z": "z", "R": "p", "P": "p"}
AXES_EXPECTED = "axes among T, C, Z and R/P (position), then Y and X (one sample per pixel)"
TIFF_SUFFIXES = (".tif", ".tiff")
NDTIFF_PIXEL_TYPES = {0: "uint8", 1: "uint16", 3: "uint16", 4: "uint16", 5: "uint16", 6: "uint16"}
NDTIFF_AXES = {"channel": "c", "z": "z", "time": "t", "position": "p"}
MAX_OME_XML_CHARS = 1_000_000


@dataclass
class Frame:
    c: int
    z: int
    t: int
    p: int
    channel_name: str | None
    array: np.ndarray
    meta: dict
    source: str


@dataclass
class FrameSource:
    """What is known before the pixels are read, and the frames as a lazy iterator."""

    format: str
    path: str
    axes: str
    global_meta: dict
    channel_names: list[str]
    frame_count: int
    _frames: Iterator[Frame] | None = field(default=None, repr=False)

    def frames(self) -> Iterator[Frame]:
        if self._frames is None:
            raise RuntimeError("frames() can be iterated once")
        frames, self._frames = self._frames, None
        seen: set[tuple[int, int, int, int]] = set()
        for frame in frames:
            key = (frame.c, frame.z, frame.t, frame.p)
            if key in seen:
                raise InputError(
                    frame.source,
                    f"two frames with the same indices c={frame.c} z={frame.z} t={frame.t} "
                    f"p={frame.p}",
                    expected="each (channel, z, time, position) once",
                )
            seen.add(key)
            if frame.array.ndim != 2:
                raise InputError(
                    frame.source,
                    f"frame c={frame.c} z={frame.z} t={frame.t} p={frame.p} has shape "
                    f"{frame.array.shape}",
                    expected="2-D frames (one sample per pixel)",
                )
            yield frame


def _channel_name(names, c: int) -> str | None:
    """The channel's name when the file names it."""
    return names[c] if c < len(names) else None


def _unreadable(path: Path | str, error: BaseException) -> InputError:
    return InputError(str(path), f"not a readable TIFF ({type(error).__name__}: {error})")


class _TifffileErrors(logging.Handler):
    """Collects what tifffile logs at ERROR while it parses: it skips damaged pages and tags
    (a truncated file, say) with a log message instead of raising, which would silently ingest
    fewer frames."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _damage_is_an_error(path: Path) -> Iterator[None]:
    handler = _TifffileErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise InputError(
            str(path),
            f"damaged or truncated TIFF ({handler.messages[0][:200]})",
            expected="a complete TIFF file",
        )


def _open_tiff(path: Path) -> tifffile.TiffFile:
    """The open TiffFile with every page and series parsed; damage is an InputError."""
    if not path.is_file():
        raise InputError(str(path), "the file does not exist", expected="a TIFF file")
    tif = None
    try:
        with _damage_is_an_error(path):
            tif = tifffile.TiffFile(path)
            len(tif.pages)  # parses every page header, so a truncated file shows up here
            tif.series  # noqa: B018 - parses the series (and OME-XML, IndexMap)
    except InputError:
        if tif is not None:
            tif.close()
        raise
    except Exception as error:  # noqa: BLE001 - any parse failure is an unreadable input
        if tif is not None:
            tif.close()
        raise _unreadable(path, error) from error
    return tif


def detect_format(path: Path) -> str:
    """ome-tiff, ndtiff, micromanager, tiff-folder or tiff, from the content."""
    if path.is_dir():
        if (path / "NDTiff.index").is_file():
            return "ndtiff"
        return "tiff-folder"
    with _open_tiff(path) as tif:
        if tif.is_ndtiff:
            return "ndtiff"
        if tif.is_micromanager and tif.is_mmstack:
            return "micromanager"
        if tif.is_ome:
            return "ome-tiff"
        return "tiff"


def open_frames(
    path: Path | str, fmt: str = "auto", positions: list[Path] | None = None
) -> FrameSource:
    """The frames of a file or folder (or of a multi-file position set) in the given format."""
    path = Path(path)
    if positions:
        return _ome_position_set(path, positions)
    if not path.exists():
        raise InputError(str(path), "the file or folder does not exist")
    if fmt in ("", "auto"):
        fmt = detect_format(path)
    if fmt == "ndtiff":
        return _ndtiff(path)
    if fmt == "tiff-folder":
        if not path.is_dir():
            raise InputError(str(path), "not a folder", expected="a folder of single-frame TIFFs")
        return _tiff_folder(path)
    if path.is_dir():
        raise InputError(str(path), f"a folder, not a {fmt} file", expected=f"a {fmt} file")
    if fmt == "micromanager":
        return _mmstack(path)
    if fmt in ("ome-tiff", "tiff"):
        return _series_file(path, fmt)
    raise InputError(str(path), f"unknown format {fmt!r}", expected="a frames format")


# -- series-based files: OME-TIFF and plain multi-page TIFFs ----------------------------------------


def _axes_map(axes: str, shape: tuple[int, ...], path: Path) -> list[str]:
    """Lower-case index names of the non-YX axes, or an error naming the axes."""
    if len(axes) < 2 or axes[-2:] != "YX":
        raise InputError(
            str(path),
            f"series axes {axes!r} (shape {shape}) do not end with YX",
            expected=AXES_EXPECTED,
        )
    names = []
    for letter, size in zip(axes[:-2], shape[:-2], strict=True):
        name = AXIS_NAMES.get(letter)
        if name is None and size != 1:
            raise InputError(
                str(path),
                f"series axes {axes!r} (shape {shape}): axis {letter!r} is not a frame axis",
                expected=AXES_EXPECTED,
            )
        if name is not None and name in names:
            raise InputError(
                str(path), f"series axes {axes!r} name {name} twice", expected=AXES_EXPECTED
            )
        names.append(name or "_")
    return names


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_ome(xml: str) -> list[dict]:
    """Per OME Image: name, Pixels attributes, channel names and per-plane attributes."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    images = []
    for image in (e for e in root if _local(e.tag) == "Image"):
        pixels = next((e for e in image if _local(e.tag) == "Pixels"), None)
        if pixels is None:
            continue
        channels = [e.attrib for e in pixels if _local(e.tag) == "Channel"]
        planes = {}
        for plane in (e for e in pixels if _local(e.tag) == "Plane"):
            key = tuple(int(plane.attrib.get(k, 0)) for k in ("TheC", "TheZ", "TheT"))
            planes[key] = dict(plane.attrib)
        images.append(
            {
                "name": image.attrib.get("Name"),
                "pixels": dict(pixels.attrib),
                "channels": [dict(c) for c in channels],
                "planes": planes,
            }
        )
    return images


def _series_frames(
    tif: tifffile.TiffFile,
    series: tifffile.TiffPageSeries,
    path: Path,
    p_base: int,
    channel_names: list[str],
    planes: dict,
) -> Iterator[Frame]:
    shape = tuple(series.shape)
    names = _axes_map(series.axes, shape, path)
    outer = shape[:-2]
    planes_count = int(np.prod(outer)) if outer else 1
    pages = series.pages
    by_page = len(pages) == planes_count and all(p is not None for p in pages)
    plane_bytes = int(np.prod(shape[-2:])) * series.dtype.itemsize
    if not by_page and series.dataoffset is None:
        raise InputError(
            str(path),
            f"series of shape {shape} has {len(pages)} pages for {planes_count} planes and is "
            "not contiguous",
            expected="one page per 2-D plane",
        )
    for i in range(planes_count):
        index = np.unravel_index(i, outer) if outer else ()
        where = {"c": 0, "z": 0, "t": 0, "p": 0}
        for name, value in zip(names, index, strict=True):
            if name != "_":
                where[name] = int(value)
        where["p"] += p_base
        try:
            if by_page:
                array = pages[i].asarray()
            else:
                handle = tif.filehandle
                handle.seek(series.dataoffset + i * plane_bytes)
                array = np.frombuffer(handle.read(plane_bytes), dtype=series.dtype).reshape(
                    shape[-2:]
                )
        except Exception as error:  # noqa: BLE001 - a truncated or corrupt page
            raise InputError(
                str(path), f"page {i} cannot be decoded ({type(error).__name__}: {error})"
            ) from error
        c = where["c"]
        meta = dict(planes.get((c, where["z"], where["t"]), {}))
        yield Frame(
            c=c,
            z=where["z"],
            t=where["t"],
            p=where["p"],
            channel_name=_channel_name(channel_names, c),
            array=array.reshape(shape[-2:]),
            meta=meta,
            source=str(path),
        )


def _series_file(path: Path, fmt: str) -> FrameSource:
    tif = _open_tiff(path)
    try:
        series_list = list(tif.series)
        if not series_list:
            raise InputError(str(path), "no image series in the file")
        ome = parse_ome(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else []
        if fmt == "ome-tiff" and not tif.is_ome:
            raise InputError(str(path), "not an OME-TIFF", expected="OME-XML in the first page")
        first = series_list[0]
        for s in series_list[1:]:
            if s.axes != first.axes or s.shape != first.shape:
                raise InputError(
                    str(path),
                    f"series have different axes or shapes ({first.axes} {first.shape} vs "
                    f"{s.axes} {s.shape}); only equal series are read as positions",
                    expected="one series, or one series per position of equal shape",
                )
        _axes_map(first.axes, tuple(first.shape), path)
    except BaseException:
        tif.close()
        raise
    channel_names = (
        [c.get("Name") or f"C{i}" for i, c in enumerate(ome[0]["channels"])] if ome else []
    )
    if not channel_names and tif.is_imagej:
        labels = (tif.imagej_metadata or {}).get("Labels")
        if isinstance(labels, list):
            channel_names = [str(x) for x in labels]
    global_meta: dict = {"format": fmt, "axes": first.axes, "shape": list(first.shape)}
    if ome:
        global_meta["ome"] = [{k: v for k, v in im.items() if k != "planes"} for im in ome]
        if len(tif.ome_metadata) <= MAX_OME_XML_CHARS:
            global_meta["ome_xml"] = tif.ome_metadata
    elif tif.is_shaped:
        global_meta["shaped"] = _jsonable(tif.shaped_metadata[0]) if tif.shaped_metadata else {}
    elif tif.is_imagej:
        global_meta["imagej"] = _jsonable(
            {k: v for k, v in (tif.imagej_metadata or {}).items() if k != "Labels"}
        )
    per_series = int(np.prod(first.shape[:-2])) if len(first.shape) > 2 else 1

    def frames() -> Iterator[Frame]:
        with tif:
            for index, series in enumerate(series_list):
                planes = ome[index]["planes"] if index < len(ome) else {}
                yield from _series_frames(tif, series, path, index, channel_names, planes)

    return FrameSource(
        format=fmt,
        path=str(path),
        axes=first.axes if len(series_list) == 1 else "R" + first.axes,
        global_meta=global_meta,
        channel_names=channel_names,
        frame_count=per_series * len(series_list),
        _frames=frames(),
    )


def _ome_position_set(folder: Path, positions: list[Path]) -> FrameSource:
    """One OME-TIFF per position: p is the file's place in the list."""
    files = [p if p.is_absolute() else folder / p for p in positions]
    sources = []
    for file in files:
        if not file.is_file():
            raise InputError(str(file), "a position file of the set does not exist")
        source = _series_file(file, "ome-tiff")
        if "R" in source.axes or "P" in source.axes:
            raise InputError(
                str(file),
                f"axes {source.axes!r} already have a position axis",
                expected="one position per file",
            )
        sources.append(source)
    first = sources[0]
    for file, source in zip(files[1:], sources[1:], strict=True):
        if source.axes != first.axes or source.channel_names != first.channel_names:
            for s in sources:
                s._frames.close()
            raise InputError(
                str(file),
                f"axes {source.axes} / channels {source.channel_names} differ from the first "
                f"position's ({first.axes} / {first.channel_names})",
                expected="the same axes and channels in every position file",
            )

    def frames() -> Iterator[Frame]:
        for p, source in enumerate(sources):
            for frame in source.frames():
                frame.p = p
                yield frame

    return FrameSource(
        format="ome-tiff",
        path=str(folder),
        axes="R" + first.axes,
        global_meta={
            "format": "ome-tiff",
            "positions": [str(f) for f in files],
            "ome": first.global_meta.get("ome"),
            "axes": first.axes,
        },
        channel_names=first.channel_names,
        frame_count=sum(s.frame_count for s in sources),
        _frames=frames(),
    )


# -- Micro-Manager ----------------------------------------------------------------------------------


def _ndtiff(path: Path) -> FrameSource:
    folder = path if path.is_dir() else path.parent
    index_file = folder / "NDTiff.index"
    if not index_file.is_file():
        raise InputError(str(folder), "no NDTiff.index beside the NDTiff files")
    entries = list(tifffile.read_ndtiff_index(index_file))
    if not entries:
        raise InputError(str(index_file), "the NDTiff index is empty or unreadable")
    categories: dict[str, dict[str, int]] = {}
    rows = []
    for axes, filename, dataoffset, width, height, pixeltype, compression, mo, mb, mc in entries:
        where = {"c": 0, "z": 0, "t": 0, "p": 0}
        label = None
        for axis, value in axes.items():
            name = NDTIFF_AXES.get(axis)
            if name is None:
                if value not in (0, None):
                    raise InputError(
                        str(index_file),
                        f"axis {axis!r} (value {value!r}) is not a frame axis",
                        expected="NDTiff axes channel, z, time and position",
                    )
                continue
            if isinstance(value, str):
                codes = categories.setdefault(axis, {})
                value_index = codes.setdefault(value, len(codes))
                if name == "c":
                    label = value
                value = value_index
            where[name] = int(value)
        if pixeltype not in NDTIFF_PIXEL_TYPES:
            raise InputError(
                str(index_file),
                f"pixel type {pixeltype} (RGB or unknown) is not supported",
                expected="monochrome 8 to 16 bit",
            )
        if compression != 0 or mc != 0:
            raise InputError(str(index_file), "compressed NDTiff frames are not supported")
        rows.append((where, label, filename, dataoffset, width, height, pixeltype, mo, mb))
    first_file = folder / rows[0][2]
    with _open_tiff(first_file) as tif:
        summary = (tif.micromanager_metadata or {}).get("Summary") or {}
        byteorder = tif.byteorder
    channel_names = list(categories.get("channel", {}))
    if not channel_names and isinstance(summary.get("ChNames"), list):
        channel_names = [str(n) for n in summary["ChNames"]]

    def frames() -> Iterator[Frame]:
        handles: dict[str, object] = {}
        try:
            for where, label, filename, dataoffset, width, height, pixeltype, mo, mb in rows:
                handle = handles.get(filename)
                if handle is None:
                    file = folder / filename
                    if not file.is_file():
                        raise InputError(str(file), "a file named in NDTiff.index is missing")
                    handle = handles[filename] = open(file, "rb")  # noqa: SIM115 - closed below
                dtype = np.dtype(NDTIFF_PIXEL_TYPES[pixeltype]).newbyteorder(byteorder)
                nbytes = width * height * dtype.itemsize
                handle.seek(dataoffset)
                data = handle.read(nbytes)
                if len(data) != nbytes:
                    raise InputError(
                        str(folder / filename),
                        f"frame at offset {dataoffset} is truncated ({len(data)} of {nbytes} bytes)",
                    )
                meta = {}
                if mb > 0:
                    handle.seek(mo)
                    try:
                        meta = json.loads(handle.read(mb).decode("utf-8", errors="replace"))
                    except json.JSONDecodeError:
                        meta = {}
                c = where["c"]
                yield Frame(
                    c=c,
                    z=where["z"],
                    t=where["t"],
                    p=where["p"],
                    channel_name=label or _channel_name(channel_names, c),
                    array=np.frombuffer(data, dtype=dtype).reshape(height, width),
                    meta=meta,
                    source=str(folder / filename),
                )
        finally:
            for handle in handles.values():
                handle.close()

    return FrameSource(
        format="ndtiff",
        path=str(folder),
        axes="".join(
            sorted({NDTIFF_AXES[a].upper() for e in entries for a in e[0] if a in NDTIFF_AXES})
        )
        + "YX",
        global_meta={"format": "ndtiff", "Summary": _jsonable(summary)},
        channel_names=channel_names,
        frame_count=len(rows),
        _frames=frames(),
    )


def _mm_indices(meta: dict) -> dict[str, int] | None:
    keys = {"c": "ChannelIndex", "z": "SliceIndex", "t": "FrameIndex", "p": "PositionIndex"}
    if not all(k in meta for k in keys.values()):
        return None
    return {name: int(meta[key]) for name, key in keys.items()}


def _mmstack(path: Path) -> FrameSource:
    """Micro-Manager stacks: indices from the IndexMap (by page offset), else from tag 51123."""
    tif = _open_tiff(path)
    try:
        mm = tif.micromanager_metadata or {}
    except Exception as error:  # noqa: BLE001
        tif.close()
        raise _unreadable(path, error) from error
    summary = mm.get("Summary") or {}
    by_offset: dict[int, dict[str, int]] = {}
    index_map = mm.get("IndexMap")
    if index_map is not None:
        for row in np.asarray(index_map).reshape(-1, 5):
            c, z, t, p, offset = (int(v) for v in row)
            by_offset[offset] = {"c": c, "z": z, "t": t, "p": p}
    channel_names = [str(n) for n in summary.get("ChNames") or []]
    count = len(by_offset) or len(tif.pages)

    def frames() -> Iterator[Frame]:
        with tif:
            for number in range(len(tif.pages)):
                page = tif.pages[number]
                if not isinstance(page, tifffile.TiffPage):
                    continue
                tag = page.tags.get("MicroManagerMetadata")
                meta = tag.value if tag is not None and isinstance(tag.value, dict) else {}
                where = by_offset.get(page.offset) or _mm_indices(meta)
                if where is None:
                    if by_offset:
                        continue  # a page the IndexMap does not list (a thumbnail, say)
                    raise InputError(
                        str(path),
                        f"page {number} has no IndexMap entry and no indices in tag 51123",
                        expected="Micro-Manager ChannelIndex/SliceIndex/FrameIndex/PositionIndex",
                    )
                c = where["c"]
                yield Frame(
                    c=c,
                    z=where["z"],
                    t=where["t"],
                    p=where["p"],
                    channel_name=_channel_name(channel_names, c),
                    array=page.asarray(),
                    meta=_jsonable(meta),
                    source=str(path),
                )

    return FrameSource(
        format="micromanager",
        path=str(path),
        axes=tif.series[0].axes if tif.series else "",
        global_meta={"format": "micromanager", "Summary": _jsonable(summary)},
        channel_names=channel_names,
        frame_count=count,
        _frames=frames(),
    )


# -- a folder of single-frame TIFFs ------------------------------------------------------------------

_MM2_TOKENS = {
    "c": re.compile(r"channel(\d+)", re.I),
    "p": re.compile(r"position(\d+)", re.I),
    "t": re.compile(r"time(\d+)", re.I),
    "z": re.compile(r"(?:^|_)z(\d+)", re.I),
}
_MM14 = re.compile(r"^img_(?P<t>\d+)_(?P<channel>.+?)_(?P<z>\d+)$")
_POS_FOLDER = re.compile(r"^pos(?:ition)?_?(\d+)$", re.I)
FOLDER_NAMES_EXPECTED = (
    "names like img_channel000_position000_time000000000_z000.tif (Micro-Manager 2) or "
    "img_000000000_<channel>_000.tif in Pos<N>/ folders (Micro-Manager 1.4)"
)


def _folder_metadata(folder: Path) -> tuple[dict, dict[str, dict]]:
    """(Summary, per-file metadata by file name) from metadata.txt files, when present."""
    summary: dict = {}
    per_file: dict[str, dict] = {}
    for file in sorted(folder.rglob("metadata.txt")):
        try:
            data = json.loads(file.read_text(errors="replace"))
        except json.JSONDecodeError as error:
            raise InputError(str(file), f"not valid JSON ({error})") from error
        if not isinstance(data, dict):
            continue
        summary = summary or (data.get("Summary") or {})
        for key, value in data.items():
            if key == "Summary" or not isinstance(value, dict):
                continue
            name = value.get("FileName")
            if name:
                per_file[Path(str(name)).name] = value
    return summary, per_file


def _tiff_folder(folder: Path) -> FrameSource:
    files = sorted(
        f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
    )
    if not files:
        raise InputError(str(folder), "no TIFF files in the folder", expected="*.tif frames")
    summary, per_file = _folder_metadata(folder)
    channel_names = [str(n) for n in summary.get("ChNames") or []]
    located = []
    mm14_channels: list[str] = list(channel_names)
    for file in files:
        stem = file.stem.removesuffix(".ome")
        where = {"c": 0, "z": 0, "t": 0, "p": 0}
        label = None
        tokens = {k: rx.search(stem) for k, rx in _MM2_TOKENS.items()}
        m14 = _MM14.match(stem)
        if any(tokens.values()):
            for name, match in tokens.items():
                if match:
                    where[name] = int(match.group(1))
        elif m14:
            where["t"], where["z"] = int(m14["t"]), int(m14["z"])
            label = m14["channel"]
            if label not in mm14_channels:
                mm14_channels.append(label)
            where["c"] = mm14_channels.index(label)
            pos = _POS_FOLDER.match(file.parent.name) if file.parent != folder else None
            where["p"] = int(pos.group(1)) if pos else 0
        else:
            raise InputError(
                str(file),
                "cannot tell the frame's channel, z, time and position from its name",
                expected=FOLDER_NAMES_EXPECTED,
            )
        located.append((where, label, file))
    channel_names = channel_names or mm14_channels

    def frames() -> Iterator[Frame]:
        for where, label, file in located:
            with _open_tiff(file) as tif:
                if len(tif.pages) != 1:
                    raise InputError(
                        str(file), f"{len(tif.pages)} pages", expected="one frame per file"
                    )
                try:
                    array = tif.pages[0].asarray()
                except Exception as error:  # noqa: BLE001
                    raise _unreadable(file, error) from error
            c = where["c"]
            yield Frame(
                c=c,
                z=where["z"],
                t=where["t"],
                p=where["p"],
                channel_name=label or _channel_name(channel_names, c),
                array=array,
                meta=_jsonable(per_file.get(file.name, {})),
                source=str(file),
            )

    return FrameSource(
        format="tiff-folder",
        path=str(folder),
        axes="TCZRYX",
        global_meta={
            "format": "tiff-folder",
            "Summary": _jsonable(summary),
            "files": len(files),
        },
        channel_names=channel_names,
        frame_count=len(files),
        _frames=frames(),
    )


def _jsonable(value):
    """Metadata made JSON-safe (numpy scalars and arrays, bytes, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 10_000 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
