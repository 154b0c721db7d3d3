"""Looking at shards: the `inspect` summary and the `preview` contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.generator.segmentation import OCCLUDER_COLOURS, OCCLUDERS
from facegen.shards import open_shards, read_manifest



def summarise(directory: Path) -> str:
    shards = open_shards(directory)
    a = shards.attrs
    manifest = read_manifest(Path(directory)) or {}
    vis = shards.read_all("visibility").astype(bool)
    inf = shards.read_all("in_frame").astype(bool)
    pose = shards.read_all("head_pose")
    lines = [
        f"{directory}: {len(shards)} samples in {len(shards.files)} shards"
        + (f" (job: {manifest.get('num_samples')} samples)" if manifest else ""),
        f"spec       {a.get('spec_name')} ({shards.num_landmarks} points, sha256 {str(a.get('spec_hash'))[:12]})",
        f"renderer   {a.get('renderer')} v{a.get('renderer_version')}   seed {a.get('seed')}   "
        f"image {a.get('image_size')}   outputs {a.get('outputs')}",
        f"model      {str(a.get('model_hash'))[:16]}   config {str(a.get('config_hash'))[:12]}",
        "",
        f"labels     visible {vis.mean():.1%}   in frame {inf.mean():.1%}   "
        f"visible when in frame {vis.sum() / max(inf.sum(), 1):.1%}",
    ]
    names = shards.landmark_names
    groups = ({g: np.asarray(ix) for g, ix in json.loads(a["landmark_groups"]).items()}
              if "landmark_groups" in a else _groups(shards.spec_yaml, names))
    if groups:
        lines.append("per group  " + "   ".join(
            f"{g} {vis[:, idx].mean():.0%}" for g, idx in groups.items()))
    if shards.has("occluded_by"):  # what hides the points, as a share of all points
        counts = np.bincount(shards.read_all("occluded_by").ravel(), minlength=len(OCCLUDERS))
        lines.append("hidden by  " + "   ".join(f"{OCCLUDERS[k]} {c / counts.sum():.1%}"
                                                 for k, c in enumerate(counts) if k > 0 and c))
    if shards.has("amodal"):
        lines.append(_amodal_line(shards))
    lines.append("")
    lines.append("head pose (deg)   p1     p10    p50    p90    p99   |  histogram")
    for i, label in enumerate(("yaw", "pitch", "roll")):
        p = np.percentile(pose[:, i], [1, 10, 50, 90, 99])
        lines.append(f"  {label:<14}" + "".join(f"{x:7.1f}" for x in p) + "   |  " + _spark(pose[:, i]))
    lines.append(f"  distance (cm)   {np.percentile(pose[:, 5], 1):.1f} .. {np.percentile(pose[:, 5], 99):.1f}")
    shards.close()
    return "\n".join(lines)


def _amodal_line(shards, most: int = 64) -> str:
    """The amodal face's share of the image and, with segmentation maps, the share of it covered by
    what the sample wears (every class but the head's own), averaged over at most `most` samples
    spread over the set (reading every map of a large set would take minutes)."""
    from facegen.generator.parts import HEAD_PARTS
    from facegen.generator.segmentation import CLASS_ID

    head = sorted({CLASS_ID[p.segment] for p in HEAD_PARTS} | {CLASS_ID["brows"], CLASS_ID["lips"]})
    picks = np.unique(np.linspace(0, len(shards) - 1, min(len(shards), most)).astype(int))
    keys = ("amodal", "segmentation") if shards.has("segmentation") else ("amodal",)
    area, covered = [], []
    for i in picks:
        s = shards.read(int(i), keys=keys)
        face = s["amodal"].astype(bool)
        area.append(face.mean())
        if "segmentation" in s:
            covered.append((face & ~np.isin(s["segmentation"], head)).sum() / max(face.sum(), 1))
    line = f"amodal     face {np.mean(area):.1%} of the image"
    if covered:
        line += f"   covered by what is worn {np.mean(covered):.1%} of it"
    return line + (f"   ({len(picks)} samples)" if len(picks) < len(shards) else "")


def _stored(shards, directory: Path, name: str, flag: str) -> None:
    """Refuse a preview flag whose per-pixel output the shards do not hold."""
    outputs = json.loads(shards.attrs.get("outputs", '["rgb"]'))
    if name not in outputs:
        shards.close()
        raise FacegenError(f"{directory}: its shards hold no {name} maps (outputs: {', '.join(outputs)}); "
                           f"render with --outputs rgb,{name}, or preview without {flag}")


AMODAL_OUTLINE = (0, 230, 255)  # the amodal face's outline in previews (sRGB)


def _outline(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool at `size` (width, height): the pixels just inside the border of an upscaled mask."""
    import cv2

    big = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return (big > 0) & (cv2.erode(big, np.ones((3, 3), np.uint8), borderValue=0) == 0)


def _legend(codes: list[int], width: int, occluders: bool, amodal: bool = False) -> np.ndarray:
    """A strip naming the point colours of the sheet: visible, and each occluder that appears (and
    the amodal outline's colour when it is drawn)."""
    import cv2

    strip = np.full((22, width, 3), 32, np.uint8)
    x = 6
    if amodal:
        cv2.rectangle(strip, (x, 6), (x + 10, 16), AMODAL_OUTLINE, 1)
        cv2.putText(strip, "amodal face", (x + 14, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
        x += 22 + 8 * len("amodal face")
    for code in codes:
        name = "visible" if code == 0 else (OCCLUDERS[code] if occluders else "hidden")
        cv2.circle(strip, (x + 5, 11), 5, tuple(int(c) for c in OCCLUDER_COLOURS[code]), -1, cv2.LINE_AA)
        cv2.putText(strip, name, (x + 14, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
        x += 22 + 8 * len(name)
    return strip


def _groups(spec_yaml: str, names: list[str]) -> dict[str, np.ndarray]:
    """Point indices per group, from the spec text stored in the shard."""
    import yaml

    try:
        doc = yaml.safe_load(spec_yaml) or {}
    except yaml.YAMLError:
        return {}
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(doc.get("points", []) or []):
        if isinstance(p, dict) and "group" in p and i < len(names):
            groups.setdefault(str(p["group"]), []).append(i)
    return {g: np.array(idx) for g, idx in groups.items()}


def _spark(values: np.ndarray, lo: float = -90, hi: float = 90, bins: int = 18) -> str:
    """A one-line histogram over [lo, hi] (10-degree bins)."""
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    ramp = " .:-=+*#%@"
    top = max(counts.max(), 1)
    return f"{lo:+.0f} " + "".join(ramp[int(np.ceil(c / top * (len(ramp) - 1)))] for c in counts) + f" {hi:+.0f}"


def contact_sheet(directory: Path, output: Path, n: int = 16, cols: int = 4, start: int = 0,
                  scale: float = 2.0, segmentation: bool = False, amodal: bool = False) -> Path:
    """A grid of `n` samples from `start` with landmarks: visible green, hidden ones in the colour of
    what hides them (a legend below; red = the face itself, or every hidden point in shards without
    occluder labels); with `segmentation`, each sample's class map (docs/segmentation.md) beside it;
    with `amodal`, the outline of the amodal face mask over the image (and the class map)."""
    import cv2

    from facegen.generator.segmentation import colorize

    shards = open_shards(directory)
    if start >= len(shards):
        raise FacegenError(f"--start {start}: the folder has only {len(shards)} samples")
    keys = ("image", "landmarks_2d", "visibility", "in_frame")
    occluders = shards.has("occluded_by")
    if occluders:
        keys += ("occluded_by",)
    if segmentation:
        _stored(shards, directory, "segmentation", "--segmentation")
        keys += ("segmentation",)
    if amodal:
        _stored(shards, directory, "amodal", "--amodal")
        keys += ("amodal",)
    indices = range(start, min(start + n, len(shards)))
    tiles, seen = [], set()
    for i in indices:
        s = shards.read(i, keys=keys)
        image = cv2.resize(s["image"], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        if amodal:
            outline = _outline(s["amodal"], image.shape[1::-1])
            image[outline] = AMODAL_OUTLINE
        # Pixel centres are at integers: a point (u, v) lands at (u + 0.5) * scale - 0.5 when upscaled.
        pts = (s["landmarks_2d"] + 0.5) * scale - 0.5
        radius = max(1, int(round(scale * 0.75)))
        codes = s["occluded_by"] if occluders else np.where(s["visibility"] > 0, 0, 1)
        seen.update(int(c) for c, inf in zip(codes, s["in_frame"]) if inf)
        for (u, v), code, inf in zip(pts, codes, s["in_frame"]):
            if inf:
                colour = tuple(int(c) for c in OCCLUDER_COLOURS[code])
                cv2.circle(image, (int(round(u * 4)), int(round(v * 4))), radius * 4, colour, -1,
                           lineType=cv2.LINE_AA, shift=2)
        cv2.putText(image, str(i), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        if segmentation:
            classes = cv2.resize(colorize(s["segmentation"]), image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            if amodal:
                classes[outline] = AMODAL_OUTLINE
            image = np.concatenate([image, classes], axis=1)
        tiles.append(image)
    shards.close()
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * h, min(cols, len(tiles)) * w, 3), 32, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    sheet = np.concatenate([sheet, _legend(sorted(seen), sheet.shape[1], occluders, amodal)], axis=0)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise FacegenError(f"-o {output}: cannot write the image (use a .png path in a writable folder)")
    return output
