"""A deterministic sample specimen collection: brightfield-like neuron z-stacks and their SWC.

    <root>/neuron_001/neuron_001_bf-0000.tif ... neuron_001.swc     (train, traced)
    <root>/neuron_002/...                                             (train, traced, zlib TIFFs)
    <root>/neuron_003/...                                             (train, no skeleton)
    <root>/TEST_DATA_SET/neuron_101/...                               (test split, no skeleton)

Each specimen is a random tree (seeded by its name) rendered as dark neurites on a bright, noisy,
unevenly lit field; the SWC is the same tree (x, y in pixels, z in slices, radius in pixels), so
skeleton and pixels agree: a node at (x, y) darkens the pixels within its radius of pixel
(round(y), round(x)) of the slices near its z, i.e. x and y are pixel indices (0 is the centre of
the first pixel), the convention stacks/render.py draws skeletons with. "tiny" is for tests;
"bench" is one specimen of 64 slices of 2048x2048 uint16 (512 MiB) for benchmarks/bench_stacks.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile


@dataclass(frozen=True)
class SampleSpecimen:
    name: str
    split: str = "train"
    traced: bool = True
    compression: str | None = None


@dataclass(frozen=True)
class StackPreset:
    slices: int
    height: int
    width: int
    specimens: tuple[SampleSpecimen, ...]


PRESETS = {
    "tiny": StackPreset(
        slices=6,
        height=96,
        width=128,
        specimens=(
            SampleSpecimen("neuron_001"),
            SampleSpecimen("neuron_002", compression="zlib"),
            SampleSpecimen("neuron_003", traced=False),
            SampleSpecimen("neuron_101", split="TEST_DATA_SET", traced=False),
        ),
    ),
    "bench": StackPreset(
        slices=64, height=2048, width=2048, specimens=(SampleSpecimen("bench_001"),)
    ),
}


@dataclass
class SampleCollection:
    root: Path
    preset: StackPreset
    folders: dict[str, Path] = field(default_factory=dict)

    def slice_path(self, specimen: str, z: int) -> Path:
        return self.folders[specimen] / slice_name(specimen, z)


def slice_name(specimen: str, z: int) -> str:
    return f"{specimen}_bf-{z:04d}.tif"


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))


def neuron_tree(name: str, height: int, width: int, slices: int) -> list[tuple]:
    """SWC rows (n, type, x, y, z, radius, parent) of a random neuron inside the volume."""
    rng = _rng(name)
    side = min(height, width)
    soma = (width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2, (slices - 1) / 2)
    nodes = [(1, 1, *soma, max(1.5, side * 0.04), -1)]
    step = max(2.0, side / 24)
    stack = []
    for angle in rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 5))):
        stack.append((1, angle, 3 if len(stack) % 2 else 4, 10))
    while stack and len(nodes) < 400:
        parent, angle, kind, steps = stack.pop()
        for _ in range(steps):
            _, _, px, py, pz, pr, _ = nodes[parent - 1]
            angle += rng.normal(0, 0.35)
            x = float(np.clip(px + step * np.cos(angle), 1, width - 2))
            y = float(np.clip(py + step * np.sin(angle), 1, height - 2))
            z = float(np.clip(pz + rng.normal(0, 0.4), 0, slices - 1))
            r = max(0.8, pr * 0.92 if pr < side * 0.03 else side * 0.012 + 0.8)
            nodes.append(
                (len(nodes) + 1, kind, round(x, 3), round(y, 3), round(z, 3), round(r, 3), parent)
            )
            parent = len(nodes)
            if rng.random() < 0.12 and steps > 3:
                stack.append((parent, angle + rng.choice([-0.8, 0.8]), kind, steps - 3))
    return nodes


def _points(nodes: list[tuple]) -> np.ndarray:
    """Points every ~0.7 px along each edge: (x, y, z, radius)."""
    by_id = {n[0]: n for n in nodes}
    points = [np.array([nodes[0][2:6]])]
    for _, _, x, y, z, r, parent in nodes[1:]:
        _, _, qx, qy, qz, qr, _ = by_id[parent]
        count = max(2, int(np.hypot(x - qx, y - qy) / 0.7) + 1)
        t = np.linspace(0, 1, count)[:, None]
        points.append(np.array([qx, qy, qz, qr]) * (1 - t) + np.array([x, y, z, r]) * t)
    return np.concatenate(points)


def render_slice(
    points: np.ndarray, z: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """One brightfield-like slice: uneven illumination, noise, dark neurites in focus near z."""
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    image = 3000.0 + 350.0 * xx - 250.0 * yy * yy
    image = image + rng.normal(0, 25, size=(height, width)).astype(np.float32)
    focus = np.exp(-(((points[:, 2] - z) / 1.5) ** 2))
    near = points[focus > 0.05]
    depth = 1800.0 * focus[focus > 0.05]
    darkness = np.zeros((height, width), dtype=np.float32)
    reach = int(np.ceil(near[:, 3].max())) if len(near) else 0
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            inside = dx * dx + dy * dy <= near[:, 3] ** 2
            ys = np.clip(np.round(near[inside, 1]).astype(int) + dy, 0, height - 1)
            xs = np.clip(np.round(near[inside, 0]).astype(int) + dx, 0, width - 1)
            np.maximum.at(darkness, (ys, xs), depth[inside])
    return np.clip(image - darkness, 0, 65535).astype(np.uint16)


def swc_text(name: str, nodes: list[tuple]) -> str:
    header = [
        f"# {name}: synthetic neuron traced from the sample stack's geometry",
        "# units: x, y and radius in pixels, z in slices",
        "# n type x y z radius parent",
    ]
    return "\n".join(header + [" ".join(str(v) for v in node) for node in nodes]) + "\n"


def generate_stacks(root: str | Path, preset: str | StackPreset = "tiny") -> SampleCollection:
    """Write the collection under `root` (deterministic: same bytes on every call)."""
    chosen = PRESETS[preset] if isinstance(preset, str) else preset
    root = Path(root)
    collection = SampleCollection(root, chosen)
    for specimen in chosen.specimens:
        folder = (
            root / specimen.name
            if specimen.split == "train"
            else root / specimen.split / specimen.name
        )
        folder.mkdir(parents=True, exist_ok=True)
        collection.folders[specimen.name] = folder
        nodes = neuron_tree(specimen.name, chosen.height, chosen.width, chosen.slices)
        points = _points(nodes)
        rng = _rng(specimen.name + "/noise")
        for z in range(chosen.slices):
            pixels = render_slice(points, z, chosen.height, chosen.width, rng)
            tifffile.imwrite(
                folder / slice_name(specimen.name, z), pixels, compression=specimen.compression
            )
        if specimen.traced:
            (folder / f"{specimen.name}.swc").write_text(swc_text(specimen.name, nodes))
    return collection
