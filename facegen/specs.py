"""Landmark specs: YAML files that name points on the face model, and their compiled array form.

A spec (see docs/landmark-specs.md) lists points as a `vertex`, a barycentric point (`triangle` +
`weights`) or a `contour` (ordered candidate vertices, inner -> frontal -> outer; the one on the
outline for the current pose is chosen by `CompiledSpec.locate`). `read_spec` parses and checks the
schema; `compile_spec` checks it against a FaceModel (indices, symmetry) and returns arrays;
`load_spec` does both (what `facegen.load_spec` is).
Every problem is a `SpecError` naming the file, the entry and the reason.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from facegen.errors import FacegenError
from facegen.face_model import FaceModel, vertex_normals

MIRROR_TOL_CM = 0.05  # the ICT mesh is symmetric to ~0.03 cm; a wrong pair is off by centimetres
MIDLINE_TOL_CM = 0.05
WEIGHT_SUM_TOL = 1e-4

TOP_KEYS = {"name", "description", "model", "num_points", "points", "pairs", "ibug68", "ibug68_3d", "generator"}
POINT_KEYS = {"name", "group", "vertex", "triangle", "weights", "contour", "frontal"}

# The standard iBUG-68 horizontal flip permutation (point i <-> IBUG68_FLIP[i]).
IBUG68_FLIP = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


class SpecError(FacegenError):
    """A malformed landmark spec; the message is `FILE: ENTRY: REASON`."""


@dataclass(frozen=True)
class Point:
    name: str
    group: str
    kind: str  # "vertex" | "barycentric" | "contour"
    vertex: int | None = None
    triangle: int | None = None
    weights: tuple[float, float, float] | None = None
    contour: tuple[int, ...] | None = None
    frontal: int | None = None  # the contour candidate used on a frontal face


@dataclass(frozen=True)
class Spec:
    """A parsed, schema-checked spec (not yet checked against a model)."""

    yaml_text: str
    path: str  # where it came from (for error messages)
    name: str
    description: str
    model_id: str
    points: tuple[Point, ...]
    pairs: tuple[tuple[int, int], ...]
    groups: dict[str, list[int]]
    ibug68: tuple[int, ...] | None  # None for ibug68 itself
    # Spec point on the surface point of each ibug68_3d point in a frontal view (AFLW2000-3D's jaw convention);
    # None: the same as ibug68.
    ibug68_3d: tuple[int, ...] | None = None

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.yaml_text.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class CompiledSpec:
    name: str
    num_points: int
    names: list[str]
    groups: dict[str, np.ndarray]
    flip: np.ndarray  # (L,) int permutation for a horizontal image flip
    yaml_text: str
    hash: str  # sha256 of yaml_text
    tri_vertices: np.ndarray  # (L, 3) int vertex indices ((v, v, v) for vertex points)
    weights: np.ndarray  # (L, 3) float barycentric weights
    contours: dict[int, np.ndarray]  # point index -> candidate vertex indices (inner -> outer)
    ibug68: np.ndarray  # (68,) spec point index per iBUG-68 point
    ibug68_3d: np.ndarray  # (68,) the same for the 3D-fit convention (ibug68_3d); dense specs: same surface points
    triangles: np.ndarray = field(repr=False)  # model triangles, for normals in locate()
    contour_facing: dict[int, float] = field(default_factory=dict)  # target facing cosine per contour
    contour_frontal: dict[int, int] = field(default_factory=dict)  # position of the frontal candidate
    model_hash: str = ""

    def locate_indices(
        self, vertices: np.ndarray, camera_centre: np.ndarray, normals: np.ndarray | None = None
    ) -> dict[int, int]:
        """The vertex chosen for each contour point for this pose (point index -> vertex index).

        Rule (landmark marching): let h be the unit view direction from the camera centre to the mesh
        centroid (weak perspective: one direction for the whole head) and f_k = -n_k . h how much
        candidate k faces the camera. The target f* is the frontal candidate's n_z on the neutral
        model, so on a frontal view the frontal vertex (ICT's standard index) is chosen. Otherwise
        march from the frontal candidate: outwards while f > f* (this side turned towards the camera:
        the point slides to ICT's jawline alternatives), inwards while f < f* (turned away: it slides
        onto the cheek, where the outline is), and stop at the first candidate that reaches f*
        (whichever of it and the one before is closer to f*). With f* = 0 this is the silhouette."""
        if not self.contours:
            return {}
        v = np.asarray(vertices, np.float64)
        if normals is None:
            normals = vertex_normals(v, self.triangles)
        n = np.asarray(normals, np.float64)
        h = view_direction(v, camera_centre)
        chosen = {}
        for i, cand in self.contours.items():
            f = -(n[cand] @ h) - self.contour_facing[i]
            k = self.contour_frontal[i]
            step = 1 if f[k] > 0 else -1
            while 0 <= k + step < len(cand) and np.sign(f[k + step]) == np.sign(f[k]) and f[k] != 0:
                k += step
            if 0 <= k + step < len(cand) and f[k] != 0 and abs(f[k + step]) < abs(f[k]):
                k += step
            chosen[i] = int(cand[k])
        return chosen

    def locate(
        self, vertices: np.ndarray, camera_centre: np.ndarray, normals: np.ndarray | None = None
    ) -> np.ndarray:
        """3D positions (L, 3) float64 of all points on the posed mesh, contours resolved for the view."""
        v = np.asarray(vertices, np.float64)
        pts = np.einsum("lk,lkc->lc", self.weights, v[self.tri_vertices])
        for i, vi in self.locate_indices(v, camera_centre, normals).items():
            pts[i] = v[vi]
        return pts

    def frontal_positions(self, vertices: np.ndarray) -> np.ndarray:
        """Positions with every contour point at its frontal vertex (no view needed)."""
        v = np.asarray(vertices, np.float64)
        return np.einsum("lk,lkc->lc", self.weights, v[self.tri_vertices])


def view_direction(vertices: np.ndarray, camera_centre: np.ndarray) -> np.ndarray:
    """Unit vector (3,) from the camera centre to the centroid of `vertices` (V, 3)."""
    import cv2  # cv2.mean sums in double; numpy's mean over axis 0 of (V, 3) is ~10x slower

    centroid = np.array(cv2.mean(np.asarray(vertices).reshape(-1, 1, 3))[:3])
    h = centroid - np.asarray(camera_centre, np.float64)
    return h / max(np.linalg.norm(h), 1e-12)


# -- finding and parsing ------------------------------------------------------------------------


def list_specs() -> list[str]:
    """Names of the built-in landmark specs (landmark_specs/*.yaml)."""
    root = importlib.resources.files("facegen.landmark_specs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_spec(name_or_path: str | Path) -> tuple[str, str]:
    """(yaml text, display path) for a built-in name or a path to a YAML file."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if s.endswith((".yaml", ".yml")) or p.exists() or "/" in s:
        if not p.is_file():
            raise SpecError(f"{s}: no such spec file")
        return p.read_text(encoding="utf-8"), s
    res = importlib.resources.files("facegen.landmark_specs").joinpath(f"{s}.yaml")
    if not res.is_file():
        raise SpecError(f"unknown spec {s!r}; built-in specs: {', '.join(list_specs())} (or give a path to a YAML file)")
    return res.read_text(encoding="utf-8"), f"landmark_specs/{s}.yaml"


def read_spec(name_or_path: str | Path) -> Spec:
    """Read and schema-check a spec given by built-in name (e.g. "dense490") or path (not compiled:
    `load_spec` compiles it against a face model)."""
    text, where = resolve_spec(name_or_path)
    return parse_spec(text, where)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_spec(text: str, where: str = "<string>") -> Spec:
    """Parse YAML text into a Spec, checking the schema (not the model)."""

    def fail(entry: str, reason: str) -> SpecError:
        return SpecError(f"{where}: {entry}: {reason}" if entry else f"{where}: {reason}")

    try:
        # The C loader (when PyYAML has libyaml) parses dense1001 ~10x faster; same safe semantics.
        d = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise fail("", f"not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise fail("", "expected a mapping with keys name, model, points, ...")
    unknown = set(d) - TOP_KEYS
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    for k in ("name", "model", "points"):
        if k not in d:
            raise fail(k, "missing required key")
    if not isinstance(d["name"], str) or not d["name"]:
        raise fail("name", "must be a non-empty string")
    if not isinstance(d["model"], str):
        raise fail("model", "must be a model topology id such as 'ict-facekit'")
    raw = d["points"]
    if not isinstance(raw, list) or not raw:
        raise fail("points", "must be a non-empty list")

    points: list[Point] = []
    for i, p in enumerate(raw):
        label = f"points[{i}]"
        if not isinstance(p, dict):
            raise fail(label, "must be a mapping like {name: ..., vertex: N}")
        if "name" in p:
            label += f" {p['name']!r}"
        unknown = set(p) - POINT_KEYS
        if unknown:
            raise fail(label, f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(POINT_KEYS))})")
        kinds = [k for k in ("vertex", "triangle", "contour") if k in p]
        if len(kinds) != 1:
            raise fail(label, "needs exactly one of vertex, triangle (+ weights) or contour")
        name = p.get("name", f"p{i:04d}")
        group = p.get("group", "default")
        if not isinstance(name, str) or not isinstance(group, str):
            raise fail(label, "name and group must be strings")
        kind = kinds[0]
        if kind != "triangle" and "weights" in p:
            raise fail(label, "weights only go with triangle")
        if kind != "contour" and "frontal" in p:
            raise fail(label, "frontal only goes with contour")
        if kind == "vertex":
            if not _int(p["vertex"]) or p["vertex"] < 0:
                raise fail(label, f"vertex must be a non-negative integer, got {p['vertex']!r}")
            points.append(Point(name, group, "vertex", vertex=p["vertex"]))
        elif kind == "triangle":
            t, w = p["triangle"], p.get("weights")
            if not _int(t) or t < 0:
                raise fail(label, f"triangle must be a non-negative integer, got {t!r}")
            if not (isinstance(w, list) and len(w) == 3 and all(_num(x) for x in w)):
                raise fail(label, f"weights must be 3 numbers, got {w!r}")
            if min(w) < 0 or abs(sum(w) - 1) > WEIGHT_SUM_TOL:
                raise fail(label, f"degenerate barycentric weights {w}: need all >= 0 and sum 1")
            points.append(Point(name, group, "barycentric", triangle=t, weights=tuple(float(x) for x in w)))
        else:
            c = p["contour"]
            if not (isinstance(c, list) and c and all(_int(x) and x >= 0 for x in c)):
                raise fail(label, "contour must be a non-empty list of vertex indices")
            if len(set(c)) != len(c):
                raise fail(label, "contour lists a vertex twice")
            fr = p.get("frontal", c[0])
            if fr not in c:
                raise fail(label, f"frontal vertex {fr!r} is not one of the contour's candidates")
            points.append(Point(name, group, "contour", contour=tuple(c), frontal=fr))

    seen_names: dict[str, int] = {}
    seen_loc: dict[tuple, int] = {}
    for i, pt in enumerate(points):
        if pt.name in seen_names:
            raise fail(f"points[{i}] {pt.name!r}", f"duplicate point name (also points[{seen_names[pt.name]}])")
        seen_names[pt.name] = i
        loc = _location_key(pt)
        if loc in seen_loc:
            raise fail(f"points[{i}] {pt.name!r}", f"duplicate point: same location as points[{seen_loc[loc]}]")
        seen_loc[loc] = i

    n = len(points)
    if "num_points" in d and d["num_points"] != n:
        raise fail("num_points", f"declares {d['num_points']!r} points but the spec lists {n}")

    pairs = _parse_pairs(d.get("pairs", []), n, seen_names, fail)

    ibug = _parse_correspondence(d, "ibug68", n, fail)
    if ibug is None and n != 68:
        raise fail("ibug68", f"missing: a spec with {n} points must give its correspondence to iBUG-68")
    ibug_3d = _parse_correspondence(d, "ibug68_3d", n, fail)

    groups: dict[str, list[int]] = {}
    for i, pt in enumerate(points):
        groups.setdefault(pt.group, []).append(i)
    return Spec(
        yaml_text=text, path=where, name=d["name"], description=str(d.get("description", "")),
        model_id=d["model"], points=tuple(points), pairs=pairs, groups=groups, ibug68=ibug, ibug68_3d=ibug_3d,
    )


def _parse_correspondence(d: dict, key: str, n: int, fail) -> tuple[int, ...] | None:
    """A list of 68 point indices under `key` (the spec's point for each iBUG-68 point), or None."""
    ibug = d.get(key)
    if ibug is None:
        return None
    if not (isinstance(ibug, list) and len(ibug) == 68 and all(_int(x) for x in ibug)):
        raise fail(key, "must be a list of 68 point indices")
    bad = [x for x in ibug if not 0 <= x < n]
    if bad:
        raise fail(key, f"point index {bad[0]} out of range (spec has {n} points)")
    return tuple(ibug)


def _location_key(pt: Point) -> tuple:
    if pt.kind == "vertex":
        return ("v", pt.vertex)
    if pt.kind == "contour":
        return ("v", pt.frontal)  # a contour sits on its frontal vertex on a frontal face
    w = np.round(np.asarray(pt.weights), 6)
    if (w == 1).any():  # a barycentric corner is that vertex; resolved against the model at compile
        return ("t", pt.triangle, int(np.argmax(w)))
    return ("t", pt.triangle, *w.tolist())


def _parse_pairs(raw: Any, n: int, names: dict[str, int], fail) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise fail("pairs", "must be a list of [i, j] point index (or name) pairs")
    used: dict[int, int] = {}
    out = []
    for k, pr in enumerate(raw):
        if not (isinstance(pr, list) and len(pr) == 2):
            raise fail(f"pairs[{k}]", f"must be [i, j], got {pr!r}")
        ij = []
        for x in pr:
            if isinstance(x, str):
                if x not in names:
                    raise fail(f"pairs[{k}]", f"no point named {x!r}")
                x = names[x]
            if not _int(x) or not 0 <= x < n:
                raise fail(f"pairs[{k}]", f"point index {x!r} out of range (spec has {n} points)")
            ij.append(x)
        i, j = ij
        if i == j:
            raise fail(f"pairs[{k}]", f"pairs point {i} with itself (midline points are simply left out)")
        for x in (i, j):
            if x in used:
                raise fail(f"pairs[{k}]", f"point {x} is already in pairs[{used[x]}]")
            used[x] = k
        out.append((i, j))
    return tuple(out)


# -- compiling against a model ------------------------------------------------------------------

_COMPILED: dict[tuple[str, str], CompiledSpec] = {}


def mirror_vertices(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """(mirror vertex index, distance) for every vertex under x -> -x."""
    from scipy.spatial import cKDTree

    v = np.asarray(model.neutral, np.float64)
    d, idx = cKDTree(v).query(v * [-1.0, 1.0, 1.0])
    return idx.astype(np.int64), d


def compile_spec(spec: Spec, model: FaceModel) -> CompiledSpec:
    """Check a spec against a model and turn it into arrays (memoised per spec and model hash)."""
    key = (spec.hash, model.hash)
    if key in _COMPILED:
        return _COMPILED[key]

    def fail(i: int | None, reason: str) -> SpecError:
        entry = f"points[{i}] {spec.points[i].name!r}: " if i is not None else ""
        return SpecError(f"{spec.path}: {entry}{reason}")

    if spec.model_id != model.model_id:
        raise SpecError(f"{spec.path}: model: spec is for {spec.model_id!r} but the face model is {model.model_id!r}")
    nv, nt = model.num_vertices, int(model.triangles.shape[0])
    L = spec.num_points
    tri_v = np.zeros((L, 3), np.int64)
    w = np.zeros((L, 3), np.float64)
    contours: dict[int, np.ndarray] = {}
    for i, p in enumerate(spec.points):
        if p.kind == "barycentric":
            if p.triangle >= nt:
                raise fail(i, f"triangle {p.triangle} out of range (model has {nt} triangles)")
            tri_v[i] = model.triangles[p.triangle]
            w[i] = p.weights
        else:
            vs = p.contour if p.kind == "contour" else (p.vertex,)
            bad = [x for x in vs if x >= nv]
            if bad:
                what = "contour vertex" if p.kind == "contour" else "vertex"
                raise fail(i, f"{what} {bad[0]} out of range (model has {nv} vertices)")
            v0 = p.frontal if p.kind == "contour" else p.vertex
            tri_v[i] = v0
            w[i] = (1.0, 0.0, 0.0)
            if p.kind == "contour":
                contours[i] = np.asarray(p.contour, np.int64)

    V = np.asarray(model.neutral, np.float64)
    pos = np.einsum("lk,lkc->lc", w, V[tri_v])
    # Duplicates that only show against the model (a barycentric corner equal to a vertex point).
    order = np.lexsort(pos.T[::-1])
    same = np.all(np.abs(np.diff(pos[order], axis=0)) < 1e-6, axis=1)
    if same.any():
        k = int(np.flatnonzero(same)[0])
        a, b = sorted((int(order[k]), int(order[k + 1])))
        raise fail(b, f"duplicate point: same position as points[{a}] {spec.points[a].name!r}")

    flip = np.arange(L)
    for a, b in spec.pairs:
        flip[a], flip[b] = b, a
        err = float(np.linalg.norm(pos[a] * [-1, 1, 1] - pos[b]))
        if err > MIRROR_TOL_CM:
            raise fail(a, f"pair ({a}, {b}) is not mirror-consistent: the mirror of {spec.points[a].name!r} "
                          f"is {err:.2f} cm from {spec.points[b].name!r}")
    for i in np.flatnonzero(flip == np.arange(L)):
        if abs(pos[i, 0]) > MIDLINE_TOL_CM:
            raise fail(int(i), f"has no mirror partner in pairs but is {pos[i, 0]:+.2f} cm off the midline (x = 0)")

    n = vertex_normals(V, model.triangles)
    facing = {i: float(n[spec.points[i].frontal, 2]) for i in contours}
    ibug = np.arange(68) if spec.ibug68 is None else np.asarray(spec.ibug68, np.int64)
    ibug_3d = ibug if spec.ibug68_3d is None else np.asarray(spec.ibug68_3d, np.int64)
    compiled = CompiledSpec(
        name=spec.name, num_points=L, names=[p.name for p in spec.points],
        groups={g: np.asarray(ix, np.int64) for g, ix in spec.groups.items()},
        flip=flip, yaml_text=spec.yaml_text, hash=spec.hash, tri_vertices=tri_v, weights=w,
        contours=contours, ibug68=ibug, ibug68_3d=ibug_3d, triangles=model.triangles, contour_facing=facing,
        contour_frontal={i: spec.points[i].contour.index(spec.points[i].frontal) for i in contours},
        model_hash=model.hash,
    )
    _COMPILED[key] = compiled
    return compiled


def load_spec(name_or_path: str | Path, model: FaceModel | None = None) -> CompiledSpec:
    """A landmark spec (built-in name, e.g. "dense490", or path to a YAML file) read, checked and compiled
    against `model` (default: the cached face model): the points' vertices, weights, contours, groups,
    pairs and iBUG-68 correspondence as arrays. `facegen.load_spec` is this function."""
    if model is None:
        from facegen.face_model import load_face_model

        model = load_face_model()
    return compile_spec(read_spec(name_or_path), model)
