"""Landmark annotation files: 300-W `.pts`, FaceSynthetics `_ldmks.txt` and JSON lists (SPIGA's), and the
300-W folder layout.

One reader per format (`read_pts`, `read_ldmks`, `read_landmark_json`), used by everything that reads that
format: a bad file fails there, naming the file, the line, what is wrong and what to do. No torch here: the
scorer imports this and nothing heavier.

`.pts` files are 1-based (Matlab) pixel centres; the project's convention puts the centre of the
top-left pixel at (0, 0) (docs/shard-format.md). `read_pts` subtracts 1 and `write_pts` adds it back:
this is the only place the conversion happens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError

# Every suffix cv2.imread decodes in the opencv-python wheels (its documented list; OpenEXR is off there).
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".jpe", ".dib", ".jp2", ".webp", ".tif", ".tiff", ".pbm", ".pgm",
              ".ppm", ".pxm", ".pnm", ".pfm", ".sr", ".ras", ".hdr", ".pic")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise FacegenError(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise FacegenError(f"{path}: not a text file (expected {what})") from None


PTS_LAYOUT = "a 300-W .pts holds 'version: 1', 'n_points: N', '{', N lines 'x y', '}'"


def _number_pair(text: str) -> list[float] | None:
    """'x y' -> [x, y], else None (a word, one number, three numbers)."""
    try:
        xy = [float(v) for v in text.split()]
    except ValueError:
        return None
    return xy if len(xy) == 2 else None


def _point(path: Path, i: int, text: str, index: int, count) -> list[float]:
    """Line i (0-based) of `path`, stripped, as point `index` (0-based) of `count`: [x, y], or an error
    naming the file and line."""
    xy = _number_pair(text)
    if xy is None:
        raise FacegenError(f"{path}:{i + 1}: {text!r} is not a point: expected two numbers 'x y' (point "
                           f"{index + 1} of {count}); fix the line")
    if not np.isfinite(xy).all():
        raise FacegenError(f"{path}:{i + 1}: {text!r} is not a finite position (NaN or Inf); fix the point or leave "
                           "this file out")
    return xy


def read_pts(path: Path | str, n_points: int | None = None, expected: str = "") -> np.ndarray:
    """Read a 300-W `.pts` file -> (L, 2) float32 in the project's 0-based convention.

    Every mistake names the file and line: a missing header line, brace or point, a line that is not two
    numbers. `n_points`: the count the caller needs (`expected` says why, e.g. "iBUG-68 has 68")."""
    path = Path(path)
    lines = _read_text(path, "a .pts landmark file").splitlines()
    header: dict[str, tuple[int, str]] = {}  # key -> (line index, value)
    start = None
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            continue
        if s == "{":
            start = i
            break
        key, colon, value = s.partition(":")
        if colon and key.strip().replace("_", "").isalpha():
            header[key.strip()] = (i, value.strip())
            continue
        fix = "add a line '{' before the first point" if _number_pair(s) else "fix or remove this line"
        raise FacegenError(f"{path}:{i + 1}: expected '{{' before the points, found {s!r}; {PTS_LAYOUT}: {fix}")
    if start is None:
        raise FacegenError(f"{path}:{max(len(lines), 1)}: the file ends without '{{' and points; {PTS_LAYOUT} (is it "
                           "empty or cut short?)")
    for key, line in (("version", "version: 1"), ("n_points", "n_points: N")):
        if key not in header:
            raise FacegenError(f"{path}:1: no '{key}' line before the '{{' on line {start + 1}; {PTS_LAYOUT}: add "
                               f"'{line}' (tools such as menpo skip the first three lines)")
    at, count = header["n_points"]
    if not count.isdigit():
        raise FacegenError(f"{path}:{at + 1}: n_points {count!r} is not a whole number; write the number of points")
    pts, end = [], None
    for i in range(start + 1, len(lines)):
        s = lines[i].strip()
        if not s:
            continue
        if s == "}":
            end = i
            break
        pts.append(_point(path, i, s, len(pts), count))
    if end is None:
        cut = (f"add a line '}}' after the last point" if len(pts) == int(count) else
               f"the file looks cut short: {len(pts)} of the {count} points are there")
        raise FacegenError(f"{path}:{len(lines)}: the file ends without the '}}' that closes the points opened on "
                           f"line {start + 1}; {cut}")
    if int(count) != len(pts):
        raise FacegenError(f"{path}:{at + 1}: the header says n_points {count} but {len(pts)} points follow (lines "
                           f"{start + 2}-{end}); fix the header or the points")
    if n_points is not None and len(pts) != n_points:
        raise FacegenError(f"{path}:{at + 1}: {len(pts)} points, but {expected or f'{n_points} are expected'}; "
                           "fix the file or move it out of the folder")
    return np.array(pts, np.float32).reshape(-1, 2) - 1.0


def write_pts(path: Path | str, points: np.ndarray) -> None:
    """Write (L, 2) points in the project's convention as a 1-based 300-W `.pts` file."""
    points = np.asarray(points, np.float64) + 1.0
    lines = ["version: 1", f"n_points:  {len(points)}", "{"] + [f"{x:.6f} {y:.6f}" for x, y in points] + ["}"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


LDMKS_POINTS = 70  # FaceSynthetics: iBUG-68, then the two pupils
LDMKS_LAYOUT = "a FaceSynthetics _ldmks.txt holds 70 lines 'x y': the 68 iBUG points, then the two pupils"


def read_ldmks(path: Path | str, n_points: int = LDMKS_POINTS) -> np.ndarray:
    """Read a FaceSynthetics `{id}_ldmks.txt` -> (70, 2) float32 pixel positions, as written (the project's
    convention: pixel centres at integers). Every mistake names the file and line."""
    path = Path(path)
    lines = _read_text(path, "a FaceSynthetics _ldmks.txt landmark file").splitlines()
    pts, last = [], 0
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            continue
        xy = _point(path, i, s, len(pts), n_points)
        if len(pts) == n_points:
            raise FacegenError(f"{path}:{i + 1}: a point beyond the {n_points} expected; {LDMKS_LAYOUT}: remove the "
                               "extra lines")
        pts.append(xy)
        last = i + 1
    if len(pts) != n_points:
        raise FacegenError(f"{path}:{last}: the file ends after {len(pts)} points, {n_points} are expected; "
                           f"{LDMKS_LAYOUT} (was it cut short?)")
    return np.array(pts, np.float32)


def write_ldmks(path: Path | str, points: np.ndarray) -> None:
    """Write (70, 2) points as a FaceSynthetics `_ldmks.txt` (one 'x y' line each, 4 decimals)."""
    Path(path).write_text("".join(f"{x:.4f} {y:.4f}\n" for x, y in np.asarray(points, np.float64)))


def find_image(pts_path: Path) -> Path | None:
    """The image that goes with a `.pts`: same stem beside it, or 300-VW's `annot/` -> `imgs/`."""
    candidates = [pts_path.parent]
    if pts_path.parent.name == "annot":
        candidates.append(pts_path.parent.parent / "imgs")
    for folder in candidates:
        for ext in IMAGE_EXTS:
            for e in (ext, ext.upper()):
                p = folder / (pts_path.stem + e)
                if p.exists():
                    return p
    return None


# -- the 300-W layout -------------------------------------------------------------------------------

#  subset name -> folders (relative to the 300-W root) whose .pts belong to it
W300_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "helen": ("helen/testset",),
    "lfpw": ("lfpw/testset",),
    "ibug": ("ibug",),
    "indoor": ("300W/01_Indoor",),
    "outdoor": ("300W/02_Outdoor",),
}
#  the standard splits as unions of the folders above (sizes on the official release)
W300_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",),            # 3148
    "common": ("helen", "lfpw"),    # 554
    "challenging": ("ibug",),       # 135
    "full": ("helen", "lfpw", "ibug"),  # 689
    "private": ("indoor", "outdoor"),   # 600
}
W300_SIZES = {"train": 3148, "common": 554, "challenging": 135, "full": 689, "private": 600}


def w300_group(relpath: str) -> str | None:
    """Which 300-W folder group a path relative to the root falls in (None: outside the layout)."""
    rel = relpath.replace("\\", "/")
    for name, folders in W300_FOLDERS.items():
        if any(rel == f or rel.startswith(f + "/") for f in folders):
            return name
    return None


# AFLW2000-3D's pose bins by |yaw| in degrees (the last one closed: 90 is in it); a report with all three
# also gets their "balanced" mean, which counts each pose range equally.
YAW_BINS = {"yaw 0-30": (0.0, 30.0), "yaw 30-60": (30.0, 60.0), "yaw 60-90": (60.0, 90.0)}


def derive_subsets(subsets: dict[str, list[int]], count: int) -> dict[str, list[int]]:
    """Add the standard unions: common = helen + lfpw, challenging = ibug, full = common + challenging,
    private = indoor + outdoor; and `all`. Keeps the order: all, standard splits, then the rest."""
    out: dict[str, list[int]] = {"all": list(range(count))}
    have = {k: v for k, v in subsets.items() if v}
    for split, parts in W300_SPLITS.items():
        if split in have:
            out[split] = list(have[split])
        elif all(p in have for p in parts) and split != "train":
            out[split] = sorted(set().union(*[have[p] for p in parts]))
    for k, v in have.items():
        out.setdefault(k, list(v))
    if any(k != "all" and v == out["all"] for k, v in out.items()):
        del out["all"]  # one name for one set (full, private...)
    return out


# -- landmark sets (what the scorer compares) ---------------------------------------------------------

# -- face regions (where on the face the error is) ---------------------------------------------------

# The five regions the field reports, as point indices of iBUG-68 (0-based): used for any 68-point ground
# truth that comes with no spec (.pts folders, SPIGA's JSON, AFLW2000-3D).
IBUG68_REGIONS: dict[str, list[int]] = {
    "jaw": list(range(0, 17)), "brows": list(range(17, 27)), "nose": list(range(27, 36)),
    "eyes": list(range(36, 48)), "mouth": list(range(48, 68)),
}
REGION_ORDER = ("jaw", "brows", "nose", "eyes", "mouth")
NO_JAW = "no_jaw"  # every point outside the jaw: AFLW2000-3D's jaw follows another convention than 300-W's


def region_of(group: str) -> str:
    """A spec group's region: left / right and fine groups merged (jaw, oval and chin are the contour)."""
    g = group.lower()
    if g in ("jaw", "oval", "chin", "contour"):
        return "jaw"
    for prefix, region in (("brow", "brows"), ("eye", "eyes"), ("lip", "mouth"), ("mouth", "mouth"),
                           ("nose", "nose"), ("cheek", "cheeks")):
        if g.startswith(prefix):
            return region
    return g


def merge_regions(groups: dict[str, list[int]], num_points: int | None = None) -> dict[str, list[int]]:
    """Spec groups (or regions already) -> regions in the usual order (jaw, brows, nose, eyes, mouth, then
    any other: cheeks, forehead), plus `no_jaw` (every point outside the jaw) when there is a jaw."""
    merged: dict[str, set[int]] = {}
    for name, idx in groups.items():
        if name != NO_JAW:
            merged.setdefault(region_of(name), set()).update(int(i) for i in idx)
    order = [r for r in REGION_ORDER if r in merged] + [r for r in merged if r not in REGION_ORDER]
    out = {r: sorted(merged[r]) for r in order if merged[r]}
    if "jaw" in out:
        total = num_points if num_points is not None else 1 + max(i for v in out.values() for i in v)
        jaw = set(out["jaw"])
        out[NO_JAW] = [i for i in range(total) if i not in jaw]
    return out


def spec_groups(spec_yaml: str, num_points: int) -> dict[str, list[int]]:
    """Point indices per group from a spec's YAML text (`group:` of each point); {} when it has none."""
    import yaml

    try:
        doc = yaml.safe_load(spec_yaml) if spec_yaml else None
    except yaml.YAMLError:
        return {}
    points = doc.get("points") if isinstance(doc, dict) else None
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(points if isinstance(points, list) else []):
        if isinstance(p, dict) and "group" in p and i < num_points:
            groups.setdefault(str(p["group"]), []).append(i)
    return groups


@dataclass
class LandmarkSet:
    """Named landmark arrays with optional subsets (indices into `names`), point groups (regions: indices
    into the points) and per-point visibility (where known: renders)."""
    names: list[str]
    points: np.ndarray                      # (N, L, 2) float64, project convention
    subsets: dict[str, list[int]] = field(default_factory=dict)
    source: str = ""
    groups: dict[str, list[int]] = field(default_factory=dict)
    visibility: np.ndarray | None = None    # (N, L) bool: True = visible in the image

    def regions(self) -> dict[str, list[int]]:
        """The regions the error is broken down by: the groups merged, or iBUG-68's for 68 points."""
        if self.groups:
            return merge_regions(self.groups, self.points.shape[1])
        if self.points.ndim == 3 and self.points.shape[1] == 68:
            return merge_regions(IBUG68_REGIONS, 68)
        return {}

    def __len__(self) -> int:
        return len(self.names)

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


def read_json(path: Path, what: str) -> tuple[object, str]:
    """(the parsed JSON, its text); invalid JSON is named by file, line and column."""
    text = _read_text(path, what)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise FacegenError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); fix the file there (a missing "
                           f"comma, bracket or quote is the usual cause); expected {what}") from None


def _json_children(text: str, start: int) -> list[tuple[object, int]]:
    """(key or index, character offset) of each value in the JSON object or array opening at `start`.
    Only called on text that parsed, to say on which line an entry is."""
    decode = json.JSONDecoder().raw_decode
    closing, i, out = ("}" if text[start] == "{" else "]"), start + 1, []
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == closing:
            return out
        key = len(out)
        if closing == "}":
            key, i = decode(text, i)
            while text[i] in " \t\r\n:":
                i += 1
        out.append((key, i))
        _, i = decode(text, i)


def json_line(text: str, *keys) -> int:
    """The line on which the value at `keys` (object keys, array indices) starts."""
    at = len(text) - len(text.lstrip())
    for key in keys:
        at = dict(_json_children(text, at))[key]
    return text.count("\n", 0, at) + 1


JSON_LAYOUT = ("a JSON list of {'imgpath' (or 'image'): NAME, 'landmarks': [[x, y], ...]} (SPIGA's layout) or "
               "{NAME: [[x, y], ...]}")


def read_landmark_json(path: Path | str) -> tuple[list[str], np.ndarray]:
    """Read a JSON landmark list (SPIGA's, `facegen eval`'s predictions.json, {name: points}, optionally under
    "predictions") -> (names, (N, L, 2) float64) as written. Every mistake names the file, the line where the
    entry starts and the entry."""
    path = Path(path)
    data, text = read_json(path, JSON_LAYOUT)
    keys: tuple = ()
    if isinstance(data, dict) and "predictions" in data:
        data, keys = data["predictions"], ("predictions",)
    if isinstance(data, dict):  # {name: landmarks}
        names, values, ids = [str(k) for k in data], list(data.values()), list(data)
        label = [f"key {k!r}" for k in names]
    elif isinstance(data, list):
        names, values, ids = [], [], list(range(len(data)))
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or "landmarks" not in entry:
                has = (f"its keys: {', '.join(map(str, entry)) or 'none'}" if isinstance(entry, dict)
                       else f"it is a JSON {type(entry).__name__}")
                raise FacegenError(f"{path}:{json_line(text, *keys, i)}: entry {i} has no 'landmarks' ({has}); each "
                                   "entry needs 'landmarks': [[x, y], ...] and 'imgpath' or 'image' to name it")
            names.append(str(entry.get("imgpath") or entry.get("image") or entry.get("name") or i))
            values.append(entry["landmarks"])
        label = [f"entry {i} ({n})" for i, n in enumerate(names)]
    else:
        raise FacegenError(f"{path}:{json_line(text, *keys)}: a JSON {type(data).__name__}; expected {JSON_LAYOUT}")
    if not values:
        raise FacegenError(f"{path}: holds no landmark entries; expected {JSON_LAYOUT}")
    arrays = []
    def where(i: int) -> str:  # only on a mistake: finding the line reads the text again
        return f"{path}:{json_line(text, *keys, ids[i])}: {label[i]}"

    for i, value in enumerate(values):
        try:
            pts = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            pts = None
        if pts is None or pts.ndim != 2 or pts.shape[1] != 2:
            raise FacegenError(f"{where(i)}: landmarks must be a list of [x, y] numbers; fix the entry")
        if not np.isfinite(pts).all():
            k = int(np.flatnonzero(~np.isfinite(pts).all(1))[0])
            raise FacegenError(f"{where(i)}: point {k} is {pts[k].tolist()}, not a finite position; fix the point or "
                               "leave the entry out")
        arrays.append(pts)
    n, odd = _common_count([len(a) for a in arrays])
    if odd is not None:
        raise FacegenError(f"{path}:{json_line(text, *keys, ids[odd])}: {label[odd]} has {len(arrays[odd])} points "
                           f"but the other entries have {n}; every entry needs the same points: fix it or leave it out")
    return names, np.asarray(arrays, np.float64)


def _common_count(counts: list[int]) -> tuple[int, int | None]:
    """The most common point count (the first one on a tie) and the index of the first entry without it."""
    from collections import Counter

    n = Counter(counts).most_common(1)[0][0]
    return n, next((i for i, c in enumerate(counts) if c != n), None)


def _db_info_beside(path: Path) -> Path | None:
    """SPIGA keeps `{db}_db_info.json` beside `{db}_test.json`; find it by the shared prefix."""
    for info in sorted(path.parent.glob("*_db_info.json")):
        prefix = info.name[: -len("_db_info.json")]
        if path.name.startswith(prefix + "_"):
            return info
    return None


def read_subsets(path: Path | str) -> dict[str, list[int]]:
    """Subsets from a SPIGA `*_db_info.json` (`test_subsets`) or a plain {name: [indices]} JSON."""
    path = Path(path)
    if not path.exists():
        raise FacegenError(f"{path}: no such subsets file")
    what = "{name: [image indices]} or SPIGA's *_db_info.json"
    data, _ = read_json(path, what)
    data = data.get("test_subsets", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise FacegenError(f"{path}: expected {what}")
    for k, v in data.items():
        if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            raise FacegenError(f"{path}: subset {k!r} must be a list of image indices (integers)")
    return {str(k): list(v) for k, v in data.items()}


def load_landmark_set(path: Path | str, subsets: Path | str | None = None) -> LandmarkSet:
    """A folder of `.pts` (recursive; names are paths relative to it without suffix) or a JSON list.

    Subsets: an explicit file, else a SPIGA `*_db_info.json` beside a JSON, else the 300-W layout."""
    path = Path(path)
    if not path.exists():
        raise FacegenError(f"{path}: no such file or folder (expected a folder of .pts or a JSON list)")
    found: dict[str, list[int]] = {}
    if path.is_dir():
        files = sorted(path.rglob("*.pts"))
        if not files:
            raise FacegenError(f"{path}: no .pts files in this folder or below")
        names = [f.relative_to(path).with_suffix("").as_posix() for f in files]
        arrays = [read_pts(f) for f in files]
        n, odd = _common_count([len(a) for a in arrays])
        if odd is not None:  # read it again asking for the common count: the message names its line
            k = sum(len(a) == n for a in arrays)
            read_pts(files[odd], n, f"{k} of the {len(files)} files in {path} have {n}; every file needs the same "
                                    "points")
        for i, name in enumerate(names):
            g = w300_group(name)
            if g:
                found.setdefault(g, []).append(i)
    else:
        names, arrays = read_landmark_json(path)
        info = _db_info_beside(path)
        if info is not None and subsets is None:
            found = read_subsets(info)
    if subsets is not None:
        found = read_subsets(subsets)
    if len(arrays) == 0:
        raise FacegenError(f"{path}: holds no landmark entries")
    points = np.asarray(arrays, np.float64)
    for k, idx in found.items():
        bad = [i for i in idx if not 0 <= i < len(names)]
        if bad:
            origin = subsets if subsets is not None else "the subsets beside it"
            raise FacegenError(f"{origin}: subset {k!r} names image {bad[0]} but {path} holds {len(names)} "
                               f"(indices 0-{len(names) - 1}); fix the subsets file or the ground truth")
    return LandmarkSet(names=names, points=points, subsets=derive_subsets(found, len(names)), source=str(path))


def align(pred: LandmarkSet, gt: LandmarkSet) -> np.ndarray:
    """Predictions in ground-truth order: matched by name, or by position when names are not shared."""
    index = pred.index()
    missing = [n for n in gt.names if n not in index]
    if not missing:
        return pred.points[[index[n] for n in gt.names]]
    if len(pred) == len(gt) and len(missing) == len(gt):
        return pred.points  # no names in common: same order (e.g. numbered lists)
    raise FacegenError(f"{pred.source}: no prediction for {len(missing)} of {len(gt)} ground-truth images "
                       f"(first: {missing[0]!r}); predictions must name the same images")
