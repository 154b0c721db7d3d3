"""Garments over the neck and shoulders: the torso that the ICT-FaceKit head lacks (it ends in an open
neck stump), so that renders show a dressed bust instead of a cut-off one.

Each cut is a template, built once per face model on its neutral mesh (`_template`):

- the body: rings around a vertical axis through the neck stump, from the neck opening (which
  follows the neck's surface a few mm outside it, from just above the stump's open edge) over the
  shoulders and chest down to a hem far below any frame the sampler makes (tests/test_clothing.py
  checks the extreme framings with the real camera);
- the cut's extra pieces: a shirt collar, a hood lying behind the neck, drawstrings.

Per sample (`garment`) the template follows this sample's neck (each vertex moves with its nearest
neck vertices, fading into the stump edge's mean motion away from the neck), gets seeded folds along
its normals and the fabric's colours baked per vertex. Model space: cm, +y up, +z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from facegen.errors import FacegenError
from facegen.face_model import vertex_normals
from facegen.generator.meshes import grid_triangles, pattern_mix
from facegen.generator.parts import SurfaceGeometry

if TYPE_CHECKING:
    from facegen.face_model import FaceModel
    from facegen.generator.scene import Clothing


@dataclass(frozen=True)
class Cut:
    """How one cut differs from the others (lengths in cm)."""

    rise: float  # the opening's height above the stump's open edge (along +y)...
    rise_share: float  # ...plus this share of the neck's height there (edge to chin level)
    ease: float  # how far the fabric stands off the neck skin at the opening
    band: float  # a plain-coloured knit band this wide along the opening (0: none)
    v_depth: float = 0.0  # v_neck: how far the V reaches down the chest (an undershirt fills it)
    collar: bool = False  # collar_shirt: a folded collar over the stand, a button placket
    hood: bool = False  # hoodie: a hood lying behind the neck, drawstrings
    ribbed: bool = False  # turtleneck: vertical ribs and a folded-over top on the tube


CUTS: dict[str, Cut] = {
    "crew_neck": Cut(rise=1.6, rise_share=0.0, ease=0.3, band=1.4),
    "v_neck": Cut(rise=1.6, rise_share=0.0, ease=0.3, band=1.2, v_depth=10.0),
    "collar_shirt": Cut(rise=2.4, rise_share=0.0, ease=0.22, band=0.0, collar=True),
    "turtleneck": Cut(rise=0.0, rise_share=0.62, ease=0.5, band=0.0, ribbed=True),
    "hoodie": Cut(rise=1.3, rise_share=0.0, ease=0.3, band=1.2, hood=True),
}
PATTERNS: tuple[str, ...] = ("plain", "stripes", "checks", "melange")

# The body's shape below the neck (cm from the neck axis): half the shoulder width, the chest's and the
# back's depth, and how boxy the cross-section is (a superellipse exponent).
HALF_WIDTH, FRONT_DEPTH, BACK_DEPTH, BOXINESS = 22.0, 10.5, 10.0, 2.5
# Below the shoulders the arms hang beside the body: this wide (half, cm) at ARM_DROP below the
# shoulder line, and on to the hem. Wide enough that the widest framing's bottom corners are dressed.
ARM_HALF_WIDTH, ARM_DROP = 25.5, 14.0
HEM_Y = -90.0  # model y of the hem: below every framing of the sampler (tests/test_clothing.py)
COLUMNS = 272  # vertices around the body
ROW_STEP = 0.38  # cm between rings near the neck: >= 2 rings per stripe of pattern_scale >= 0.8
DENSE_LENGTH = 36.0  # cm of the body (from the opening down) at ROW_STEP; sparser rings below
SPARSE_ROWS = 18

# Fabric coordinates' region codes, for colouring.
FABRIC, BAND, UNDERSHIRT, TRIM, BUTTON, CORD = range(6)


# -- the neck the garment fits --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Neck:
    centre: np.ndarray  # (2,) x, z of the vertical axis through the stump
    ring: np.ndarray  # (R,) vertex ids of the stump's open edge, by angle about the axis
    ring_theta: np.ndarray  # (R,) their angles (0 = +z, towards +x), ascending
    ring_rho: np.ndarray  # (R,) distance from the axis
    ring_y: np.ndarray  # (R,)
    chin_y: float  # the chin landmark's height: where the neck ends, for rise_share
    follow: np.ndarray  # (m,) vertex ids the garment follows per sample (neck, jaw, the ring)


@lru_cache(maxsize=4)
def _neck(model: FaceModel) -> _Neck:
    v = model.neutral
    skin = np.flatnonzero(np.isin(model.triangle_region,
                                  [model.region_names.index(r) for r in ("face", "head_neck")]))
    tris = model.triangles[skin]
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    open_edges = unique[count == 1]
    ring = _loop_through(open_edges, int(open_edges.ravel()[np.argmin(v[open_edges.ravel(), 1])]))
    p = v[ring]
    centre = np.array([(p[:, 0].max() + p[:, 0].min()) / 2, (p[:, 2].max() + p[:, 2].min()) / 2])
    theta = np.arctan2(p[:, 0] - centre[0], p[:, 2] - centre[1]) % (2 * np.pi)
    order = np.argsort(theta)
    ring, p, theta = ring[order], p[order], theta[order]
    chin_y = float(v[model.landmarks68[8], 1])
    follow = np.union1d(np.unique(tris)[v[np.unique(tris), 1] < chin_y + 1.0], ring)
    return _Neck(centre, ring, theta, np.hypot(p[:, 0] - centre[0], p[:, 2] - centre[1]), p[:, 1],
                 chin_y, follow)


def _loop_through(edges: np.ndarray, start: int) -> np.ndarray:
    """The closed loop of boundary `edges` that passes through vertex `start`."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges.tolist():
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loop, previous, current = [start], None, start
    while True:
        step = next(n for n in neighbours[current] if n != previous)
        if step == start:
            return np.array(loop)
        loop.append(step)
        previous, current = current, step


def _periodic(theta: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of values given at ascending angles `at`, periodic in 2 pi."""
    return np.interp(theta % (2 * np.pi), np.r_[at[-1] - 2 * np.pi, at, at[0] + 2 * np.pi],
                     np.r_[values[-1], values, values[0]])


def _radial_table(model: FaceModel, neck: _Neck, theta: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(theta), len(ys)) distance from the neck axis to the skin along horizontal rays (the
    farthest hit, so a ring there is outside every fold); NaN where a ray misses (below the edge)."""
    skin = np.isin(model.triangle_region, [model.region_names.index(r) for r in ("face", "head_neck")])
    tri = model.neutral[model.triangles[skin]].astype(np.float64)
    tri[..., 0] -= neck.centre[0]
    tri[..., 2] -= neck.centre[1]
    lo, hi = tri[..., 1].min(1), tri[..., 1].max(1)
    direction = np.stack([np.sin(theta), np.cos(theta)], 1)  # (x, z) per ray
    out = np.full((len(theta), len(ys)), np.nan)
    for k, y in enumerate(ys):
        t = tri[(lo <= y) & (hi > y)]
        a, b = t, np.roll(t, -1, axis=1)  # the edges 0-1, 1-2, 2-0
        crosses = (a[..., 1] <= y) != (b[..., 1] <= y)  # exactly two per triangle
        f = (y - a[..., 1]) / np.where(crosses, b[..., 1] - a[..., 1], 1.0)
        hit = (a + f[..., None] * (b - a))[crosses][:, [0, 2]].reshape(-1, 2, 2)
        p, e = hit[:, 0], hit[:, 1] - hit[:, 0]
        denom = direction[:, None, 0] * e[None, :, 1] - direction[:, None, 1] * e[None, :, 0]
        denom = np.where(np.abs(denom) < 1e-12, 1e-12, denom)
        dist = (p[None, :, 0] * e[None, :, 1] - p[None, :, 1] * e[None, :, 0]) / denom
        along = (p[None, :, 0] * direction[:, None, 1] - p[None, :, 1] * direction[:, None, 0]) / denom
        dist = np.where((along >= 0) & (along <= 1) & (dist > 0), dist, -np.inf)
        out[:, k] = np.where(np.isfinite(dist.max(1)), dist.max(1), np.nan)
    return out


# -- the template: body grid, the cut's pieces, how it follows the neck ----------------------------


@dataclass(frozen=True, eq=False)
class _Template:
    vertices: np.ndarray  # (n, 3) float32, fitted to the neutral mesh
    triangles: np.ndarray  # (F, 3) int32
    normals: np.ndarray  # (n, 3) float32
    u: np.ndarray  # (n,) fabric coordinates, cm: around the body...
    v: np.ndarray  # (n,) ...and up from the hem
    kind: np.ndarray  # (n,) region code (FABRIC, BAND, ...)
    folds: np.ndarray  # (n,) how much the seeded folds move each vertex (0 at the neck opening)
    shade: np.ndarray  # (n,) fixed shading: darker inside the opening, under the collar, ...
    near: np.ndarray  # (n, K) indices into _Neck.follow of the vertices this one moves with...
    near_w: np.ndarray  # (n, K) ...and their weights (summing to how local the vertex is)
    far_w: np.ndarray  # (n,) weight of the stump edge's mean motion
    ring_in_follow: np.ndarray  # (R,) indices into _Neck.follow of the stump edge


@dataclass
class _Piece:
    """A part of a template while it is built."""

    vertices: np.ndarray  # (n, 3)
    triangles: np.ndarray  # (F, 3) local indices
    u: np.ndarray
    v: np.ndarray
    kind: np.ndarray
    folds: np.ndarray
    shade: np.ndarray


@dataclass
class _Body:
    """The body grid of a cut: rows from the opening down, COLUMNS around (column 0 at the front)."""

    points: np.ndarray  # (rows, COLUMNS, 3)
    theta: np.ndarray  # (COLUMNS,) column angles
    s: np.ndarray  # (rows, COLUMNS) arc length from the opening down the profile
    edge_s: np.ndarray  # (COLUMNS,) arc length at the stump's edge
    u: np.ndarray  # (rows, COLUMNS)
    v: np.ndarray
    normals: np.ndarray  # (rows, COLUMNS, 3), outward

    def at(self, theta: np.ndarray, s: np.ndarray, what: str = "points") -> np.ndarray:
        """Bilinear lookup of `points` or `normals` at angles and arc lengths in the dense rows."""
        grid = getattr(self, what)
        col = np.interp(np.asarray(theta) % (2 * np.pi), np.r_[self.theta, 2 * np.pi], np.arange(COLUMNS + 1.0))
        row = np.clip(np.asarray(s) / ROW_STEP, 0, round(DENSE_LENGTH / ROW_STEP) - 1)
        c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
        fc, fr = (col - c0)[..., None], (row - r0)[..., None]
        c0, c1 = c0 % COLUMNS, (c0 + 1) % COLUMNS
        out = ((1 - fr) * ((1 - fc) * grid[r0, c0] + fc * grid[r0, c1])
               + fr * ((1 - fc) * grid[r0 + 1, c0] + fc * grid[r0 + 1, c1]))
        return out / np.linalg.norm(out, axis=-1, keepdims=True) if what == "normals" else out


@lru_cache(maxsize=16)
def _template(model: FaceModel, cut_name: str) -> _Template:
    cut = CUTS[cut_name]
    neck = _neck(model)
    body = _body(model, neck, cut)
    pieces = [_body_piece(body, cut)]
    if cut.collar:
        pieces.append(_collar(body, cut))
    if cut.hood:
        pieces += _hood(body)
    offsets = np.cumsum([0] + [len(p.vertices) for p in pieces])
    vertices = np.concatenate([p.vertices for p in pieces])
    triangles = np.concatenate([p.triangles + o for p, o in zip(pieces, offsets)]).astype(np.int32)
    cat = {k: np.concatenate([getattr(p, k) for p in pieces]) for k in ("u", "v", "kind", "folds", "shade")}
    normals = vertex_normals(vertices, triangles)
    near, near_w, far_w = _binding(model, neck, vertices)
    f32 = {k: cat[k].astype(np.float32) for k in ("u", "v", "folds", "shade")}  # float32: SIMD sines
    return _Template(vertices.astype(np.float32), triangles, normals, f32["u"], f32["v"], cat["kind"].astype(np.int8),
                     f32["folds"], f32["shade"], near, near_w, far_w, np.searchsorted(neck.follow, neck.ring))


def _columns() -> np.ndarray:
    """Column angles equally spaced along the torso's cross-section, column 0 at the front centre."""
    theta = np.linspace(0, 2 * np.pi, 4097)
    r = _torso_radius(theta)
    xz = np.stack([r * np.sin(theta), r * np.cos(theta)], 1)
    arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(xz, axis=0), axis=1))]
    return np.interp(np.arange(COLUMNS) * arc[-1] / COLUMNS, arc, theta)


def _torso_radius(theta: np.ndarray, half_width: float = HALF_WIDTH) -> np.ndarray:
    depth = np.where(np.cos(theta) > 0, FRONT_DEPTH, BACK_DEPTH)
    return (np.abs(np.sin(theta) / half_width) ** BOXINESS + np.abs(np.cos(theta) / depth) ** BOXINESS) ** (-1 / BOXINESS)


def _body(model: FaceModel, neck: _Neck, cut: Cut) -> _Body:
    """Per column a profile in the (distance from the axis, y) plane: a rolled lip at the opening,
    the neck skin offset by the cut's ease down to the stump's edge, a curve over the shoulder or
    chest to the torso's cross-section, out to the arms and down to the hem."""
    theta = _columns()
    edge_y = _periodic(theta, neck.ring_theta, neck.ring_y)
    edge_rho = _periodic(theta, neck.ring_theta, neck.ring_rho)
    # The opening follows the edge smoothed (the edge is flat across the throat and climbs steeply
    # at the sides, which would make a square neckline), never closer to it than 8 mm.
    fine = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    kernel = np.exp(-0.5 * (np.minimum(fine, 2 * np.pi - fine) / 0.3) ** 2)
    smooth = np.fft.irfft(np.fft.rfft(_periodic(fine, neck.ring_theta, neck.ring_y)) * np.fft.rfft(kernel / kernel.sum()), 720)
    smooth_y = _periodic(theta, fine, smooth)
    top_y = np.maximum(smooth_y + cut.rise + cut.rise_share * (neck.chin_y - smooth_y), edge_y + 0.8)
    ys = np.arange(edge_y.min(), top_y.max() + 1.0, 0.1)
    table = _radial_table(model, neck, theta, ys)
    torso_rho, arm_rho = _torso_radius(theta), _torso_radius(theta, ARM_HALF_WIDTH)
    # Lowest point of the shoulder line, per column: the chest's front, the deltoid, the upper back.
    torso_y = -23.5 - 2.5 * np.cos(theta) - 3.0 * np.cos(2 * theta)
    dense = np.arange(0.0, DENSE_LENGTH, ROW_STEP)
    rows = len(dense) + SPARSE_ROWS
    rho_y = np.empty((rows, COLUMNS, 2))
    s_grid = np.empty((rows, COLUMNS))
    edge_s = np.empty(COLUMNS)
    for j in range(COLUMNS):
        profile, at_edge = _profile(table[j], ys, top_y[j], edge_y[j], edge_rho[j], cut.ease,
                                    torso_rho[j], torso_y[j], arm_rho[j])
        arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(profile, axis=0), axis=1))]
        s = np.r_[dense, np.linspace(DENSE_LENGTH, arc[-1], SPARSE_ROWS)]
        rho_y[:, j] = np.stack([np.interp(s, arc, profile[:, 0]), np.interp(s, arc, profile[:, 1])], 1)
        s_grid[:, j], edge_s[j] = s, arc[at_edge]
    x = neck.centre[0] + rho_y[..., 0] * np.sin(theta)
    z = neck.centre[1] + rho_y[..., 0] * np.cos(theta)
    points = np.stack([x, rho_y[..., 1], z], -1)
    # Fabric coordinates: up from the hem along the profile (stripes run level on the torso), and
    # along each ring from the front centre (a seam at the back).
    v = s_grid[-1] - s_grid
    step = np.linalg.norm(points - np.roll(points, 1, axis=1), axis=-1)
    step[:, 0] = 0
    along = np.cumsum(step, axis=1)
    girth = along[:, -1:] + np.linalg.norm(points[:, 0] - points[:, -1], axis=-1)[:, None]
    u = np.where(along > girth / 2, along - girth, along)
    triangles = grid_triangles(rows, COLUMNS, closed=True)
    normals = vertex_normals(points.reshape(-1, 3), triangles).reshape(points.shape).astype(np.float64)
    return _Body(points, theta, s_grid, edge_s, u, v, normals)


def _profile(rho_column: np.ndarray, ys: np.ndarray, top_y: float, edge_y: float, edge_rho: float,
             ease: float, torso_rho: float, torso_y: float, arm_rho: float) -> tuple[np.ndarray, int]:
    """One column's profile, (N, 2) points (rho, y) from the opening down, and the index of the
    point at the stump's edge."""
    # Skin radii from the top of the rolled lip down to the edge, with no overhang: the fabric
    # bridges the hollow of the throat.
    y = np.r_[top_y + 0.8 * ease, np.linspace(top_y, edge_y, max(int((top_y - edge_y) / 0.1), 4))]
    known = ~np.isnan(rho_column) & (ys > edge_y)
    rho = np.maximum.accumulate(np.interp(y, np.r_[edge_y, ys[known]], np.r_[edge_rho, rho_column[known]]))
    skin = np.stack([rho, y], 1)[1:]
    down = np.gradient(skin, axis=0)
    down /= np.linalg.norm(down, axis=1, keepdims=True)
    normal = np.stack([-down[:, 1], down[:, 0]], 1)
    neck = skin + ease * normal
    # A rolled lip closes the gap to the skin: from just off the neck to the top of the roll, up
    # along the skin's slope.
    lip = skin[0] + np.array([[0.2], [0.7 * ease]]) * normal[0] - np.array([[0.5 * ease], [0.8 * ease]]) * down[0]
    # Over the shoulder or chest: a cubic from the edge (leaving along the neck's slope) to the
    # torso's cross-section (arriving straight down).
    start, end = neck[-1], np.array([torso_rho, torso_y])
    leave = neck[-1] - neck[-3]
    leave /= np.linalg.norm(leave)
    reach = np.linalg.norm(end - start)
    c = np.linspace(0, 1, 40)[1:, None]
    ctrl = (start, start + 0.35 * reach * leave, end + [0.0, 0.25 * reach], end)
    shoulder = ((1 - c) ** 3 * ctrl[0] + 3 * (1 - c) ** 2 * c * ctrl[1] + 3 * (1 - c) * c ** 2 * ctrl[2]
                + c ** 3 * ctrl[3])
    # Below it the arms hang beside the body, elbows a little out: an S-curve out to the arms'
    # width, then straight down to the hem.
    arms = end + c * [0.0, -ARM_DROP] + (3 * c ** 2 - 2 * c ** 3) * [arm_rho - torso_rho, 0.0]
    hem = np.array([[arm_rho, HEM_Y]])
    return np.concatenate([lip, neck, shoulder, arms, hem]), len(lip) + len(neck) - 1


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _body_piece(body: _Body, cut: Cut) -> _Piece:
    """The body with the cut's fixed relief (a raised V-neck sweater, ribs, a placket) and regions."""
    s, u, v = body.s, body.u, body.v
    below_edge = s - body.edge_s
    relief = np.zeros_like(s)
    kind = np.full(s.shape, FABRIC)
    shade = 0.8 + 0.2 * _smoothstep(0.0, 0.9, s)  # the inside of the opening is in shadow
    # Folds start below the stump's edge, so the opening keeps hugging the neck.
    folds = _smoothstep(0.5, 4.0, below_edge)
    if cut.band:
        kind[s < cut.band] = BAND
    if cut.v_depth:
        # A V-neck pullover over a crew-neck undershirt: the undershirt is the body's surface, the
        # pullover stands 2.5 mm proud of it outside the V.
        half_top = 7.0  # cm along the opening from the front centre to a top corner of the V
        inside = (cut.v_depth * (1 - np.abs(u) / half_top) - s) / np.hypot(1, cut.v_depth / half_top)
        relief += 0.25 * _smoothstep(-0.2, 0.2, -inside) * _smoothstep(0.3, 1.2, s)
        kind = np.where(inside > 0, UNDERSHIRT, np.where(-inside < 1.2, BAND, kind))
        shade = shade * np.where(inside > 0, 0.75 + 0.25 * _smoothstep(0.0, 1.0, inside), 1.0)
        folds = folds * _smoothstep(0.0, 1.0, -inside)
    if cut.collar:
        # The placket: a raised strip down the front centre with stitched edges and buttons.
        front = below_edge > -0.5
        relief += 0.06 * (np.abs(u) < 1.4) * front
        kind = np.where(front & (np.abs(np.abs(u) - 1.4) < 0.15), TRIM, kind)
        button_at = np.round((below_edge - 4.0) / 7.0) * 7.0 + 4.0
        d = np.hypot(u, below_edge - button_at)
        button = front & (d < 0.55) & (button_at >= 4.0)
        relief += 0.12 * np.clip(1 - (d / 0.55) ** 2, 0, 1) * button
        kind = np.where(button, BUTTON, kind)
        shade = shade * (0.7 + 0.3 * _smoothstep(0.0, 3.5, s))  # under the collar
    if cut.ribbed:
        tube = _smoothstep(0.5, -0.5, below_edge)  # 1 on the tube up the neck
        folded = _smoothstep(0.35, 0.45, s / np.maximum(body.edge_s, 1.0)) < 0.5  # the turned-down top
        relief += tube * (0.05 * np.cos(2 * np.pi * u / 0.6) + 0.2 * folded * _smoothstep(0.3, 1.0, s))
        shade = shade * np.where(folded | (tube < 0.5), 1.0, 0.85 + 0.15 * _smoothstep(0.0, 0.8, s - 0.45 * body.edge_s))
    points = body.points + relief[..., None] * body.normals
    return _Piece(points.reshape(-1, 3), grid_triangles(*s.shape, closed=True), u.ravel(), v.ravel(),
                  kind.ravel(), folds.ravel(), shade.ravel())


def _collar(body: _Body, cut: Cut) -> _Piece:
    """A shirt collar's leaf, folded down over the stand (the body's opening): around the back from
    one point on the chest to the other."""
    cols, rows, tip_gap = 160, 14, 0.12  # tip_gap: radians between the centre and a collar's front edge
    c = np.linspace(0, 1, cols)
    t = np.linspace(0, 1, rows)[:, None]
    fold_theta = tip_gap + c * (2 * np.pi - 2 * tip_gap)
    near_tip = np.clip(1 - np.minimum(c, 1 - c) / 0.14, 0, 1)
    spread = 0.35 * near_tip ** 2 * np.where(c < 0.5, 1, -1)  # the points turn away from the centre
    length = 4.0 + 3.5 * near_tip ** 1.5
    fold = (body.at(fold_theta, np.zeros(cols)) + body.at(fold_theta, np.ones(cols), "normals") * (cut.ease + 0.3)
            + [0.0, 0.25, 0.0])
    edge_theta, edge_s = fold_theta + spread, length - 0.3
    edge = body.at(edge_theta, edge_s) + body.at(edge_theta, edge_s, "normals") * 0.3
    bulge = body.at(fold_theta, 0.5 * edge_s, "normals") * 0.35
    points = (1 - t)[..., None] * fold + t[..., None] * edge + np.sin(np.pi * t)[..., None] * bulge
    radius = np.hypot(fold[:, 0] - body.points[0, 0, 0], fold[:, 2] - body.points[0, 0, 2]).mean()
    u = np.broadcast_to((fold_theta - np.pi) * radius, (rows, cols))
    v = np.broadcast_to(t * length, (rows, cols))
    return _Piece(points.reshape(-1, 3), grid_triangles(rows, cols, closed=False), u.ravel(), v.ravel(),
                  np.full(rows * cols, FABRIC), np.full(rows * cols, 0.3),
                  np.broadcast_to(0.85 + 0.15 * t, (rows, cols)).ravel())  # darker towards the fold


def _hood(body: _Body) -> list[_Piece]:
    """A hoodie's hood lying down: its rim as a roll around the back of the neck (thick behind,
    thin where the two ends cross at the front), the hood itself flattened on the upper back, and
    two drawstrings hanging from the front of the opening."""
    # The rim: a tube along the opening, sitting on the body just below it.
    theta = np.linspace(0.15, 2 * np.pi - 0.15, 120)
    radius = 0.8 + 1.2 * (0.5 - 0.5 * np.cos(theta))
    s = 1.3 * radius + 0.6
    centre = body.at(theta, s) + body.at(theta, s, "normals") * (0.9 * radius)[:, None]
    rim = _tube(centre, radius, body.at(theta, s, "normals"), ring=18)
    # The hood: a flattened ellipsoid on the upper back, mostly inside the body.
    anchor_s = 12.0
    n = body.at(np.pi, anchor_s, "normals")
    down = np.cross(n, [1.0, 0.0, 0.0])
    frame = np.stack([down, n, [1.0, 0.0, 0.0]], 1)  # right-handed; the poles at the sides, not on show
    hood = _ellipsoid(body.at(np.pi, anchor_s) - 1.0 * n, frame * [10.0, 4.0, 12.0], lat=24, lon=48)
    # Drawstrings: thin cords hanging down the chest from both sides of the front.
    cords = []
    for side in (-1, 1):
        length = np.linspace(0.8, 19.0, 32)
        at_theta = side * (0.5 + 0.01 * length)
        path = body.at(at_theta, length) + body.at(at_theta, length, "normals") * 0.45
        cord = _tube(path, np.full(len(length), 0.25), body.at(at_theta, length, "normals"), ring=8)
        cord.kind[:] = CORD
        cords.append(cord)
    return [rim, hood, *cords]


def _tube(path: np.ndarray, radius: np.ndarray, up: np.ndarray, ring: int) -> _Piece:
    """A closed tube (capped ends) along `path` (P, 3) with `radius` (P,), its rings oriented by
    `up` (P, 3, roughly perpendicular to the path); outward winding."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = up - (up * tangent).sum(1, keepdims=True) * tangent
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    # Around the ring from `normal` towards -binormal: with rows along the path, d(row) x d(col)
    # then points outward.
    phi = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    offset = np.cos(phi)[None, :, None] * normal[:, None] - np.sin(phi)[None, :, None] * binormal[:, None]
    points = path[:, None] + radius[:, None, None] * offset
    n = len(path) * ring
    start, end = n, n + 1
    cap = np.arange(ring)
    triangles = np.concatenate([
        grid_triangles(len(path), ring, closed=True),
        np.stack([np.full(ring, start), cap, (cap + 1) % ring], 1),
        np.stack([np.full(ring, end), n - ring + (cap + 1) % ring, n - ring + cap], 1)])
    vertices = np.concatenate([points.reshape(-1, 3), path[[0, -1]]])
    along = np.r_[0, np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]
    u = np.r_[np.repeat(along, ring), along[[0, -1]]]
    v = np.r_[np.tile(phi, len(path)) * radius.mean(), 0.0, 0.0]
    count = len(vertices)
    return _Piece(vertices, triangles, u, v, np.full(count, FABRIC), np.full(count, 0.3), np.ones(count))


def _ellipsoid(centre: np.ndarray, axes: np.ndarray, lat: int, lon: int) -> _Piece:
    """A closed ellipsoid `centre + axes @ unit sphere` (axes (3, 3), a right-handed frame times the
    semi-axes), outward winding."""
    a = np.linspace(0, np.pi, lat + 2)[1:-1, None]
    b = np.linspace(0, 2 * np.pi, lon, endpoint=False)[None]
    sphere = np.stack(np.broadcast_arrays(np.sin(a) * np.cos(b), np.sin(a) * np.sin(b), np.cos(a)), -1)
    n = lat * lon
    cap = np.arange(lon)
    triangles = np.concatenate([
        grid_triangles(lat, lon, closed=True),
        np.stack([np.full(lon, n), cap, (cap + 1) % lon], 1),
        np.stack([np.full(lon, n + 1), n - lon + (cap + 1) % lon, n - lon + cap], 1)])
    unit = np.concatenate([sphere.reshape(-1, 3), [[0, 0, 1.0], [0, 0, -1.0]]])
    vertices = centre + unit @ axes.T
    count = len(vertices)
    # Fabric coordinates as the body's where it is upright: across, and up from the hem.
    return _Piece(vertices, triangles, vertices[:, 0], vertices[:, 1] - HEM_Y,
                  np.full(count, FABRIC), np.full(count, 0.6), np.ones(count))


def _binding(model: FaceModel, neck: _Neck, vertices: np.ndarray, k: int = 4
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which neck vertices each garment vertex moves with, and how much: fully within 1 cm of the
    neck, fading out by 6 cm (beyond, it moves with the stump edge's mean)."""
    from scipy.spatial import cKDTree

    dist, near = cKDTree(model.neutral[neck.follow]).query(vertices, k=k)
    w = 1.0 / (dist + 0.3)
    w /= w.sum(1, keepdims=True)
    local = 1.0 - _smoothstep(1.0, 6.0, dist[:, 0])
    return near.astype(np.int32), (w * local[:, None]).astype(np.float32), (1.0 - local).astype(np.float32)


# -- one sample --------------------------------------------------------------------------------------


def garment(clothing: Clothing, shaped: np.ndarray, model: FaceModel) -> SurfaceGeometry | None:
    """The garment of one sample in model space (cm), fitted to its shaped mesh (identity and
    expression, no head pose), or None for cut "none"."""
    if clothing.cut == "none":
        return None
    if clothing.cut not in CUTS:
        raise FacegenError(f"clothing.cut = {clothing.cut!r}: unknown; choose none or one of {', '.join(CUTS)}")
    if clothing.pattern not in PATTERNS:
        raise FacegenError(f"clothing.pattern = {clothing.pattern!r}: unknown; choose one of {', '.join(PATTERNS)}")
    t = _template(model, clothing.cut)
    neck = _neck(model)
    rng = np.random.default_rng(clothing.seed)
    moved = np.asarray(shaped, np.float32)[neck.follow] - model.neutral[neck.follow]
    shift = np.einsum("nk,nkc->nc", t.near_w, moved[t.near]) + t.far_w[:, None] * moved[t.ring_in_follow].mean(0)
    folds = _folds(rng, t.u, t.v) * t.folds
    vertices = t.vertices + shift + folds[:, None] * t.normals
    colours = _colours(rng, clothing, t, folds)
    return SurfaceGeometry(vertices.astype(np.float32), t.triangles, colours)


def _folds(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Seeded folds (cm along the normal): a few waves in fabric coordinates, mostly level (fabric
    sags) or diagonal (it drapes from the shoulders), each in patches, with narrow creases."""
    out = np.zeros(len(u), np.float32)
    for _ in range(7):
        angle = rng.normal(0.0, 0.4) + (np.pi / 2 if rng.random() < 0.5 else rng.choice([-0.8, 0.8]))
        k = 2 * np.pi / rng.uniform(2.5, 10.0)
        across, along = np.float32(k * np.sin(angle)), np.float32(k * np.cos(angle))
        phase = across * u + along * v + np.float32(rng.uniform(0, 2 * np.pi))
        k_patch = 2 * np.pi / rng.uniform(12.0, 30.0)
        patch = np.sin(np.float32(k_patch * np.cos(angle)) * u - np.float32(k_patch * np.sin(angle)) * v
                       + np.float32(rng.uniform(0, 2 * np.pi)))
        out += np.float32(rng.uniform(0.04, 0.14)) * np.maximum(patch, 0) ** 2 * (np.sin(phase) - 0.5 * np.abs(np.cos(phase)))
    return out


def _colours(rng: np.random.Generator, clothing: Clothing, t: _Template, folds: np.ndarray) -> np.ndarray:
    """Per-vertex linear RGB: the pattern in fabric coordinates, solid bands and trims, darker in
    the folds' creases, with slight seeded mottling."""
    c1, c2 = np.asarray(clothing.color, np.float32), np.asarray(clothing.color2, np.float32)
    mix = pattern_mix(clothing.pattern, t.u, t.v, clothing.pattern_scale, rng)
    base = c1 + mix[:, None] * (c2 - c1)
    undershirt = np.array([[0.8, 0.8, 0.78], [0.35, 0.36, 0.37], [0.02, 0.02, 0.025], [0.02, 0.03, 0.08]],
                          np.float32)[rng.integers(4)]
    button = np.array([0.75, 0.72, 0.65], np.float32) if rng.random() < 0.5 else c1 * np.float32(0.6)
    kind = t.kind[:, None]
    base = np.where(kind == BAND, c1 * 0.93, base)
    base = np.where(kind == UNDERSHIRT, undershirt, base)
    base = np.where(kind == TRIM, base * 0.75, base)
    base = np.where(kind == BUTTON, button, base)
    base = np.where(kind == CORD, c2 * 0.9 + 0.05, base)
    mottle = np.ones(len(t.u), np.float32)
    for _ in range(3):
        angle, k = rng.uniform(0, np.pi), 2 * np.pi / rng.uniform(6.0, 20.0)
        mottle += np.float32(0.02) * np.sin(np.float32(k * np.cos(angle)) * t.u + np.float32(k * np.sin(angle)) * t.v
                                            + np.float32(rng.uniform(0, 2 * np.pi)))
    shade = t.shade * mottle * np.clip(np.float32(1.0) + np.float32(1.5) * folds, 0.7, 1.1)
    return np.clip(base * shade[:, None], 0.0, 1.0).astype(np.float32)
