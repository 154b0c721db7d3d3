"""Build the built-in landmark specs from the face model, deterministically (no randomness).

`ibug68_spec_yaml(model)`: ICT's 68 Multi-PIE vertices; jaw points 0-7 and 9-16 become contours, a
line of vertices from an inner point on the cheek through the frontal vertex to ICT's jawline
alternative at the side of the head (README: "Right/Left jawline"; where the alternative equals the
frontal vertex, the next vertex of the extended jawline towards the ear).

`dense_spec_yaml(model, n)`: exactly n points, left-right symmetric by construction (the right side
and the midline are built, the left side is their mirror image):
  1. the 68 iBUG points themselves (so the iBUG correspondence is exact);
  2. a share `line_fraction` of the rest on the lines that carry shape, split over the segments
     between consecutive iBUG points in proportion to segment length x line weight (lids and lips
     densest); each sample is a barycentric point on the mesh edge where the geodesic path between
     the two iBUG vertices crosses that arc length; oval samples are contours like the iBUG jaw;
  3. the rest spread over the skin inside the face oval (cheeks, forehead, nose, chin) by farthest
     point sampling started from the points above, in mirror pairs (or single midline vertices).
"""

from __future__ import annotations

import numpy as np
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from facegen.face_model import FaceModel, vertex_normals
from facegen.specs import IBUG68_FLIP

# ICT-FaceKit README: jawline alternatives (right side = subject's right = -x, ordered ear -> chin).
RIGHT_JAWLINE = [1278, 1272, 12, 1834, 243, 781, 2199, 1447]  # substitutes iBUG 0-7
RIGHT_JAWLINE_EXTENDED = [1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800]
LEFT_JAWLINE = [3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496]  # substitutes iBUG 9-16

INNER_FRACTION = 0.55  # inner end of a contour line: the frontal point moved to this fraction of its |x|

# Lines through iBUG points (right side or midline); weight = how densely they are sampled.
LINES = [  # (name, group, iBUG indices, weight, on the midline)
    ("brow_r", "brow_right", [17, 18, 19, 20, 21], 1.5, False),
    ("lid_upper_r", "eye_right", [36, 37, 38, 39], 3.0, False),
    ("lid_lower_r", "eye_right", [39, 40, 41, 36], 3.0, False),
    ("nose_bridge", "nose", [27, 28, 29, 30], 1.0, True),
    ("nostril_r", "nose", [31, 32, 33], 1.5, False),
    ("nose_wing_r", "nose", [31, 30], 1.0, False),
    ("lip_outer_r", "lips_outer", [51, 50, 49, 48, 59, 58, 57], 2.0, False),
    ("lip_inner_r", "lips_inner", [62, 61, 60, 67, 66], 2.0, False),
]
IBUG_GROUPS = [("jaw", range(0, 17)), ("brow_right", range(17, 22)), ("brow_left", range(22, 27)),
               ("nose", range(27, 36)), ("eye_right", range(36, 42)), ("eye_left", range(42, 48)),
               ("lips_outer", range(48, 60)), ("lips_inner", range(60, 68))]


def _face_mirror(model: FaceModel) -> np.ndarray:
    """Mirror (x -> -x) vertex index of every face-region vertex, searched among face vertices only
    (other regions have coincident vertices, e.g. the eye blend meshes on the lid margin)."""
    from scipy.spatial import cKDTree

    v = np.asarray(model.neutral, np.float64)
    face = model.region_vertices("face")
    _, k = cKDTree(v[face]).query(v * [-1.0, 1.0, 1.0])
    return face[k].astype(np.int64)


class _Mesh:
    """Face-region edge graph with geodesic (shortest edge path) helpers."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.V = np.asarray(model.neutral, np.float64)
        self.N = vertex_normals(self.V, model.triangles).astype(np.float64)
        face = model.region_triangles("face")
        self.tris = model.triangles[face]
        self.tri_ids = face
        e = np.concatenate([self.tris[:, [0, 1]], self.tris[:, [1, 2]], self.tris[:, [2, 0]]])
        e = np.unique(np.sort(e, axis=1), axis=0)
        self.edges = e
        self.mirror = _face_mirror(model)
        self.edge_tri: dict[tuple[int, int], int] = {}
        for t, tri in zip(face, self.tris):
            for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
                self.edge_tri.setdefault((min(a, b), max(a, b)), int(t))
        self.midline = np.abs(self.V[:, 0]) < 1e-4

    def graph(self, allowed: np.ndarray | None = None):
        e = self.edges
        if allowed is not None:
            e = e[allowed[e[:, 0]] & allowed[e[:, 1]]]
        w = np.linalg.norm(self.V[e[:, 0]] - self.V[e[:, 1]], axis=1)
        n = len(self.V)
        return coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()

    def path(self, a: int, b: int, g) -> list[int]:
        _, pred = dijkstra(g, indices=a, return_predecessors=True)
        out = [b]
        while out[-1] != a:
            p = int(pred[out[-1]])
            if p < 0:
                raise RuntimeError(f"no path from vertex {a} to {b}")
            out.append(p)
        return out[::-1]

    def sample_path(self, path: list[int], k: int) -> list[tuple[int, int, float]]:
        """k interior samples at equal arc length along a vertex path, as (a, b, t) on its edges."""
        p = self.V[path]
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        cum = np.r_[0.0, np.cumsum(seg)]
        out = []
        for s in cum[-1] * np.arange(1, k + 1) / (k + 1):
            j = min(int(np.searchsorted(cum, s, side="right")) - 1, len(seg) - 1)
            out.append((path[j], path[j + 1], float((s - cum[j]) / seg[j])))
        return out

    def barycentric(self, a: int, b: int, t: float) -> tuple[int, list[float]]:
        tri = self.edge_tri[(min(a, b), max(a, b))]
        corners = self.model.triangles[tri]
        w = [0.0, 0.0, 0.0]
        w[int(np.flatnonzero(corners == a)[0])] = round(1.0 - t, 6)
        w[int(np.flatnonzero(corners == b)[0])] = round(t, 6)
        w[int(np.argmax(w))] += round(1.0 - sum(w), 6)  # exact sum after rounding
        return tri, w

    def front_vertex_near(self, x: float, y: float) -> int:
        """The face vertex facing forwards (n_z > 0.2) nearest to (x, y) in the image plane."""
        ok = np.flatnonzero((self.model.vertex_region == 0) & (self.N[:, 2] > 0.2))
        d = np.hypot(self.V[ok, 0] - x, self.V[ok, 1] - y)
        return int(ok[np.argmin(d)])


def _jaw_lines(mesh: _Mesh) -> dict[int, tuple[int, int, int]]:
    """(inner, frontal, outer) vertices for the right jaw points 0-7."""
    L = mesh.model.landmarks68
    out = {}
    for i in range(8):
        frontal = int(L[i])
        outer = RIGHT_JAWLINE[i]
        if outer == frontal:  # no alternative: one step further towards the ear on the extended line
            outer = RIGHT_JAWLINE_EXTENDED[RIGHT_JAWLINE_EXTENDED.index(frontal) - 1]
        x, y = mesh.V[frontal, :2]
        out[i] = (mesh.front_vertex_near(INNER_FRACTION * x, y), frontal, outer)
    return out


def _contour_line(mesh: _Mesh, g, inner: int, frontal: int, outer: int) -> list[int]:
    line = mesh.path(inner, frontal, g) + mesh.path(frontal, outer, g)[1:]
    seen, out = set(), []
    for v in line:  # a path may touch a vertex twice where the two halves meet
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _header(name: str, description: str, command: str) -> str:
    return (f"# Generated by `{command}` (facegen/spec_generate.py); edit by hand or regenerate.\n"
            f"# Schema: docs/landmark-specs.md. Right = subject's right = -x.\n")


def _flow(d: dict) -> str:
    return yaml.safe_dump(d, default_flow_style=True, sort_keys=False, width=100000).strip()


def _dump(name: str, description: str, points: list[dict], pairs: list[list[int]],
          correspondences: dict[str, list[int]] | None, command: str, options: dict | None = None) -> str:
    lines = [_header(name, description, command).rstrip("\n"),
             f"name: {name}", f"description: {_flow({'d': description})[4:-1]}", "model: ict-facekit",
             f"num_points: {len(points)}"]
    if options:
        lines.append(f"generator: {_flow(options)}")
    lines.append("points:")
    lines += [f"  - {_flow(p)}" for p in points]
    lines.append("# Mirror pairs [i, j] (the horizontal flip map); points in no pair lie on the midline.")
    lines.append("pairs:")
    lines += [f"  - [{a}, {b}]" for a, b in pairs]
    if correspondences is not None:
        lines.append("# Spec point nearest to each iBUG-68 point (used to score this spec on 300-W).")
        lines.append(f"ibug68: {_flow(correspondences['ibug68'])}")
        lines.append("# Spec point on each ibug68_3d point's surface point in a frontal view (used to score on")
        lines.append("# AFLW2000-3D). The jaw here traces the outline, so on turned faces it is not the fixed jaw.")
        lines.append(f"ibug68_3d: {_flow(correspondences['ibug68_3d'])}")
    return "\n".join(lines) + "\n"


def _ibug68_3d_vertices(mesh: _Mesh) -> list[int]:
    """The vertex of each ibug68_3d point: the jaw contours' frontal vertices (left mirrored from right),
    elsewhere ICT's Multi-PIE vertex."""
    L = [int(x) for x in mesh.model.landmarks68]
    jaw = _jaw_lines(mesh)
    return [jaw[i][1] if i < 8 else int(mesh.mirror[jaw[16 - i][1]]) if 8 < i < 17 else L[i] for i in range(68)]


def ibug68_spec_yaml(model: FaceModel, command: str = "facegen specs generate --points 68 --name ibug68",
                     jaw_3d: bool = False) -> str:
    """iBUG-68 on the model. The jaw follows the visible outline (contour points, the 300-W markup), or
    with `jaw_3d` sits on fixed surface points, the frontal outline's vertices (the 3D-fit convention of
    AFLW2000-3D and 300W-LP: on a turned face the far jaw is projected through the cheek)."""
    mesh = _Mesh(model)
    g = mesh.graph()
    L = [int(x) for x in model.landmarks68]
    jaw = _jaw_lines(mesh)
    names = ([f"jaw_{i:02d}" for i in range(17)] + [f"brow_r_{i}" for i in range(5)] + [f"brow_l_{i}" for i in range(5)]
             + [f"nose_bridge_{i}" for i in range(4)] + [f"nostril_{i}" for i in range(5)]
             + [f"eye_r_{i}" for i in range(6)] + [f"eye_l_{i}" for i in range(6)]
             + [f"lip_outer_{i:02d}" for i in range(12)] + [f"lip_inner_{i}" for i in range(8)])
    group = {i: gname for gname, r in IBUG_GROUPS for i in r}
    points = []
    for i in range(68):
        p: dict = {"name": names[i], "group": group[i]}
        if i < 8 or i > 8 and i < 17:
            inner, frontal, outer = jaw[i] if i < 8 else (int(mesh.mirror[v]) for v in jaw[16 - i])
            if jaw_3d:
                p["vertex"] = frontal
            else:
                p["contour"] = _contour_line(mesh, g, inner, frontal, outer)
                p["frontal"] = frontal
        else:
            p["vertex"] = L[i]
        points.append(p)
    pairs = [[i, int(IBUG68_FLIP[i])] for i in range(68) if IBUG68_FLIP[i] > i]
    if jaw_3d:
        return _dump("ibug68_3d", "The 68 iBUG points with the jaw on fixed surface points (the 3D-fit convention "
                     "of AFLW2000-3D and 300W-LP); elsewhere identical to ibug68.", points, pairs, None, command)
    return _dump("ibug68", "The 68 iBUG / Multi-PIE points (300-W markup) on ICT-FaceKit; jaw points "
                 "follow the face outline on turned faces.", points, pairs, None, command)


def dense_spec_yaml(model: FaceModel, n: int, name: str | None = None, line_fraction: float = 0.6,
                    command: str | None = None) -> str:
    """YAML text of a symmetric dense spec with exactly n points (n >= 68)."""
    if n < 68:
        raise ValueError("a dense spec needs at least the 68 iBUG points")
    name = name or f"dense{n}"
    command = command or f"facegen specs generate --points {n} --name {name} --line-fraction {line_fraction}"
    mesh = _Mesh(model)
    V, m = mesh.V, mesh.mirror
    g = mesh.graph()
    g_mid = mesh.graph(mesh.midline)
    L = [int(x) for x in model.landmarks68]

    # Segments between consecutive iBUG points on the right side / midline: (line name, group, path, weight, mult)
    segs = []
    for lname, grp, idx, w, mid in LINES:
        for a, b in zip(idx[:-1], idx[1:]):
            segs.append((lname, grp, mesh.path(L[a], L[b], g_mid if mid else g), w, 1 if mid else 2))
    jaw = _jaw_lines(mesh)
    jaw[8] = (L[8], L[8], L[8])
    jaw_paths = []  # right jaw 0->8: (frontal path, inner path, outer path) per segment
    for i in range(8):
        jaw_paths.append(tuple(mesh.path(jaw[i][k], jaw[i + 1][k], g) for k in (1, 0, 2)))

    length = lambda p: float(np.linalg.norm(np.diff(V[p], axis=0), axis=1).sum())  # noqa: E731
    items = [(length(s[2]) * s[3], s[4], 10**9) for s in segs]
    items += [(length(fp) * 1.0, 2, len(fp) - 2) for fp, _, _ in jaw_paths]  # oval weight 1, vertex capped
    budget = int(round((n - 68) * line_fraction))
    counts = _allocate([it[0] for it in items], [it[1] for it in items], [it[2] for it in items], budget)

    points: list[dict] = []
    pos: list[np.ndarray] = []
    pairs: list[list[int]] = []

    def add(p: dict, xyz: np.ndarray) -> int:
        points.append(p)
        pos.append(xyz)
        return len(points) - 1

    def add_pair(p: dict, xyz: np.ndarray, q: dict, xyz_q: np.ndarray) -> None:
        i = add(p, xyz)
        j = add(q, xyz_q)
        pairs.append([i, j])

    # 1. The oval: right jaw (ear -> chin), chin, then the mirror (chin -> ear) so indices run around.
    oval_right = []  # (name, inner, frontal, outer)
    for i in range(8):
        oval_right.append((f"jaw_{i:02d}", *jaw[i]))
        fp, ip, op = jaw_paths[i]
        k = counts[len(segs) + i]
        for s in range(k):
            t = (s + 1) / (k + 1)
            pick = lambda p: p[min(int(round(t * (len(p) - 1))), len(p) - 1)]  # noqa: E731
            oval_right.append((f"jaw_{i:02d}_{s + 1:02d}", pick(ip), pick(fp), pick(op)))
    right_ids = []
    for nm, inner, frontal, outer in oval_right:
        line = _contour_line(mesh, g, inner, frontal, outer)
        right_ids.append(add({"name": nm.replace("jaw_", "oval_r_") if "_" in nm[4:] else nm, "group": "oval",
                              "contour": line, "frontal": frontal}, V[frontal]))
    add({"name": "jaw_08", "group": "oval", "vertex": L[8]}, V[L[8]])
    for (nm, inner, frontal, outer), ri in zip(oval_right[::-1], right_ids[::-1]):
        line = [int(m[v]) for v in _contour_line(mesh, g, inner, frontal, outer)]
        if "_" in nm[4:]:
            nm_l = nm.replace("jaw_", "oval_l_")
        else:
            nm_l = f"jaw_{16 - int(nm[4:]):02d}"
        j = add({"name": nm_l, "group": "oval", "contour": line, "frontal": int(m[frontal])}, V[m[frontal]])
        pairs.append([ri, j])

    # 2. The other iBUG points and the lines through them.
    ibug_at: dict[int, int] = {}
    for i in range(17, 68):
        j = int(IBUG68_FLIP[i])
        if j < i and j != i:
            continue
        grp = next(gn for gn, r in IBUG_GROUPS if i in r)
        nm = f"ibug_{i:02d}"
        if j == i:
            ibug_at[i] = add({"name": nm, "group": grp, "vertex": L[i]}, V[L[i]])
        else:
            grp_j = next(gn for gn, r in IBUG_GROUPS if j in r)
            ibug_at[i] = add({"name": nm, "group": grp, "vertex": L[i]}, V[L[i]])
            ibug_at[j] = add({"name": f"ibug_{j:02d}", "group": grp_j, "vertex": L[j]}, V[L[j]])
            pairs.append([ibug_at[i], ibug_at[j]])
    seg_no: dict[str, int] = {}
    for (lname, grp, path, _, mult), k in zip(segs, counts):
        for a, b, t in mesh.sample_path(path, k):
            seg_no[lname] = seg_no.get(lname, 0) + 1
            nm = f"{lname}_{seg_no[lname]:02d}"
            nm_l = f"{lname[:-2]}_l_{seg_no[lname]:02d}"
            tri, w = mesh.barycentric(a, b, t)
            xyz = (1 - t) * V[a] + t * V[b]
            if mult == 1:
                add({"name": nm, "group": grp, "triangle": tri, "weights": w}, xyz)
            else:
                tri_l, w_l = mesh.barycentric(int(m[a]), int(m[b]), t)
                add_pair({"name": nm, "group": grp, "triangle": tri, "weights": w}, xyz,
                         {"name": nm_l, "group": grp.replace("right", "left"), "triangle": tri_l, "weights": w_l},
                         xyz * [-1, 1, 1])

    # 3. Skin fill by farthest point sampling inside the face oval, in mirror units.
    remaining = n - len(points)
    cand = _fill_candidates(mesh, L)
    chosen = np.asarray(pos)
    d = np.min(np.linalg.norm(V[cand][:, None, :] - chosen[None], axis=2), axis=1)
    is_mid = mesh.midline[cand]
    taken = set(int(points[i]["vertex"]) for i in range(len(points)) if "vertex" in points[i])
    taken |= set(int(points[i]["frontal"]) for i in range(len(points)) if "frontal" in points[i])
    d[np.isin(cand, list(taken))] = -1
    fills = 0
    while remaining > 0:
        score = d.copy()
        if remaining == 1:
            score[~is_mid] = -1
        k = int(np.argmax(score))
        if score[k] < 0:
            raise RuntimeError("ran out of fill vertices")
        v = int(cand[k])
        fills += 1
        grp = _fill_group(V[v], V, L)
        nm = f"skin_{fills:03d}"
        if is_mid[k]:
            add({"name": nm, "group": grp, "vertex": v}, V[v])
            remaining -= 1
            new = V[v][None]
        else:
            add_pair({"name": nm + "_r", "group": grp, "vertex": v}, V[v],
                     {"name": nm + "_l", "group": grp.replace("right", "left"), "vertex": int(m[v])}, V[m[v]])
            remaining -= 2
            new = np.stack([V[v], V[m[v]]])
        d = np.minimum(d, np.min(np.linalg.norm(V[cand][:, None, :] - new[None], axis=2), axis=1))
        d[k] = -1
        d[cand == m[v]] = -1

    P = np.asarray(pos)  # contour points at their frontal vertex
    nearest = lambda targets: [int(np.argmin(np.linalg.norm(P - V[v], axis=1))) for v in targets]  # noqa: E731
    ibug68 = {"ibug68": nearest(L), "ibug68_3d": nearest(_ibug68_3d_vertices(mesh))}
    desc = (f"{n} points on ICT-FaceKit: face oval (contours), brows, lids, nose, outer and inner lips "
            "densest, cheeks, forehead and chin filled evenly; symmetric.")
    return _dump(name, desc, points, pairs, ibug68, command,
                 {"points": n, "line_fraction": line_fraction})


def _allocate(weights: list[float], mult: list[int], caps: list[int], budget: int) -> list[int]:
    """Integer counts ~ weights with sum(count * mult) <= budget (largest remainder, deterministic)."""
    w = np.asarray(weights, np.float64)
    mult_a = np.asarray(mult)
    caps_a = np.asarray(caps)
    lam = budget / float((w * mult_a).sum())
    counts = np.minimum(np.floor(w * lam).astype(int), caps_a)
    used = int((counts * mult_a).sum())
    rem = w * lam - counts
    for i in np.argsort(-rem, kind="stable"):
        if used + mult_a[i] <= budget and counts[i] < caps_a[i]:
            counts[i] += 1
            used += int(mult_a[i])
    return counts.tolist()


def _fill_candidates(mesh: _Mesh, L: list[int]) -> np.ndarray:
    """Right-side and midline face vertices inside the oval (jaw points + a line over the forehead)."""
    from matplotlib.path import Path as MplPath

    V = mesh.V
    jaw = V[L[:17], :2]
    top = 9.0  # cm: upper forehead, below the hairline region of the model
    poly = np.vstack([jaw, [[jaw[-1, 0], top], [jaw[0, 0], top]]])
    inside = MplPath(poly).contains_points(V[:, :2], radius=-0.3)
    ok = inside & (mesh.model.vertex_region == 0) & (mesh.N[:, 2] > 0.15) & (V[:, 0] <= 1e-4)
    return np.flatnonzero(ok)


def _fill_group(p: np.ndarray, V: np.ndarray, L: list[int]) -> str:
    if p[1] > V[L[19], 1] + 0.3:
        return "forehead"
    if p[1] < V[L[57], 1] - 0.3:
        return "chin"
    if abs(p[0]) < abs(V[L[31], 0]) + 0.4 and V[L[33], 1] < p[1] < V[L[27], 1]:
        return "nose"
    if abs(p[0]) < abs(V[L[54], 0]) and V[L[57], 1] <= p[1] <= V[L[33], 1]:
        return "lips_outer"
    return "cheek_right" if p[0] < 0 else "cheek_left"
