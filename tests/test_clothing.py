"""Garments (generator/clothing.py): the names the sampler draws, valid geometry, determinism, a neck
opening that hugs the neck and hides the stump's open edge, outward winding, and a hem that no
framing of the sampler shows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from facegen.errors import FacegenError
from facegen.generator import clothing
from facegen.generator.sampling import load_config
from facegen.generator.scene import HEAD_PIVOT, Clothing, SceneParams, _posed, pose_scene

SKIN = ("face", "head_neck")


@pytest.fixture(scope="module")
def shapes(face_model):
    """Shaped meshes to fit: the neutral one, two identities as the sampler draws them, a wide-open jaw."""
    rng = np.random.default_rng(5)
    jaw = np.zeros(face_model.num_expressions, np.float32)
    jaw[face_model.expression_index("jawOpen")] = 1.0
    return {"neutral": face_model.mesh(),
            "identity_a": face_model.mesh(rng.standard_normal(face_model.num_identity).astype(np.float32)),
            "identity_b": face_model.mesh(rng.standard_normal(face_model.num_identity).astype(np.float32)),
            "jaw_open": face_model.mesh(expression=jaw)}


def test_names_match_the_sampling_config():
    config = load_config()["clothing"]
    assert set(clothing.CUTS) | {"none"} == set(config["cuts"])  # "none": the bare bust
    assert set(clothing.PATTERNS) == set(config["patterns"])


def test_every_cut_and_pattern_gives_valid_geometry(face_model):
    shaped = face_model.mesh()
    assert clothing.garment(Clothing(cut="none"), shaped, face_model) is None
    for cut, pattern in itertools.product(clothing.CUTS, clothing.PATTERNS):
        g = clothing.garment(Clothing(cut=cut, pattern=pattern, pattern_scale=0.8, seed=3), shaped, face_model)
        assert g.vertices.dtype == np.float32 and g.vertices.shape[1] == 3, cut
        assert np.isfinite(g.vertices).all(), cut
        assert g.triangles.dtype == np.int32 and g.triangles.min() >= 0, cut
        assert g.triangles.max() < len(g.vertices), cut
        assert g.colours.dtype == np.float32 and g.colours.shape == g.vertices.shape, cut
        assert g.colours.min() >= 0 and g.colours.max() <= 1, cut
        assert len(g.vertices) < 40_000, cut
    with pytest.raises(FacegenError, match="unknown"):
        clothing.garment(Clothing(cut="toga"), shaped, face_model)


def test_cuts_differ(face_model):
    shaped = face_model.mesh()
    made = [clothing.garment(Clothing(cut=cut, seed=1), shaped, face_model) for cut in clothing.CUTS]
    signatures = {(len(g.vertices), round(float(g.vertices[:, 1].max()), 2), round(float(g.colours.mean()), 3))
                  for g in made}
    assert len(signatures) == len(clothing.CUTS)


def test_deterministic_from_the_seed(face_model):
    shaped = face_model.mesh()
    a, b, c = (clothing.garment(Clothing(cut="hoodie", pattern="melange", seed=s), shaped, face_model)
               for s in (11, 11, 12))
    assert a.vertices.tobytes() == b.vertices.tobytes()
    assert a.colours.tobytes() == b.colours.tobytes()
    assert a.triangles.tobytes() == b.triangles.tobytes()
    assert not np.array_equal(a.vertices, c.vertices)  # other folds
    assert not np.array_equal(a.colours, c.colours)  # another melange


def _edge_ring(model) -> np.ndarray:
    """The stump's open edge: skin edges used by one triangle, on the loop through the lowest one."""
    tris = model.triangles[np.isin(model.triangle_region, [model.region_names.index(r) for r in SKIN])]
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    open_edges = unique[count == 1]
    n = model.num_vertices
    graph = coo_matrix((np.ones(len(open_edges)), (open_edges[:, 0], open_edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    lowest = open_edges.ravel()[np.argmin(model.neutral[open_edges.ravel(), 1])]
    return np.unique(open_edges[label[open_edges[:, 0]] == label[lowest]])


@pytest.mark.parametrize("cut", list(clothing.CUTS))
def test_opening_hugs_the_neck(face_model, shapes, cut):
    """No garment vertex is inside the neck (signed distance to the nearest skin vertex along its
    normal), and the opening's rolled edge stays within 1.5 cm of the skin, on every shape."""
    model = face_model
    skin = np.flatnonzero(np.isin(model.vertex_region, [model.region_names.index(r) for r in SKIN]))
    ring = _edge_ring(model)
    tris = model.triangles
    beside_edge = np.unique(tris[np.isin(tris, ring).any(1)])  # past the open edge the normal says nothing
    for name, shaped in shapes.items():
        g = clothing.garment(Clothing(cut=cut, seed=4), shaped, model)
        normals = model.vertex_normals(shaped)
        dist, nearest = cKDTree(shaped[skin]).query(g.vertices)
        nearest = skin[nearest]
        close = (dist < 3.0) & ~np.isin(nearest, beside_edge)
        signed = ((g.vertices[close] - shaped[nearest[close]]) * normals[nearest[close]]).sum(1)
        assert close.sum() > 500, (cut, name)
        assert signed.min() > -0.05, (cut, name, signed.min())
        opening = dist[:clothing.COLUMNS]  # the body's first ring is the opening's edge
        assert opening.max() < 1.5, (cut, name, opening.max())


def _ray_hits(origins, directions, triangles_xyz) -> np.ndarray:
    """Whether each ray (origin, direction) hits any of the triangles (Moller-Trumbore), beyond 1 mm."""
    a, b, c = triangles_xyz[:, 0], triangles_xyz[:, 1], triangles_xyz[:, 2]
    e1, e2 = b - a, c - a
    hit = np.zeros(len(origins), bool)
    for i, (o, d) in enumerate(zip(origins, directions)):
        p = np.cross(d, e2)
        det = (e1 * p).sum(1)
        ok = np.abs(det) > 1e-12
        inv = 1.0 / np.where(ok, det, 1.0)
        s = o - a
        u = (s * p).sum(1) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = (q * e2).sum(1) * inv
        hit[i] = (ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0.1)).any()
    return hit


@pytest.mark.parametrize("cut", list(clothing.CUTS))
def test_stump_edge_is_hidden(face_model, shapes, cut):
    """Rays leaving the stump's open edge outward (level, up and down, sideways) all hit the
    garment or the skin within 20 cm: the edge cannot be seen from outside."""
    model, shaped = face_model, shapes["identity_a"]
    ring = _edge_ring(model)
    g = clothing.garment(Clothing(cut=cut, seed=2), shaped, model)
    skin_tris = model.triangles[np.isin(model.triangle_region, [model.region_names.index(r) for r in SKIN])]
    blockers = np.concatenate([g.vertices[g.triangles], shaped[skin_tris]]).astype(np.float64)
    centroids = blockers.mean(1)
    centre = shaped[ring].mean(0)
    hit = []
    for p in shaped[ring[::2]].astype(np.float64):  # every other edge vertex: the test's time
        out = np.array([p[0] - centre[0], 0.0, p[2] - centre[2]])
        out /= np.linalg.norm(out)
        side = np.cross([0.0, 1.0, 0.0], out)
        directions = np.array([out, out + [0, 1, 0], out - [0, 1, 0], out + side, out - side, out + [0, 2.5, 0]])
        near = np.linalg.norm(centroids - p, axis=1) < 20.0  # within the shoulders
        hit.append(_ray_hits(np.broadcast_to(p, (6, 3)), directions / np.linalg.norm(directions, axis=1)[:, None],
                             blockers[near]))
    hit = np.concatenate(hit)
    assert hit.all(), f"{cut}: {np.count_nonzero(~hit)} of {len(hit)} rays from the stump's edge escape"


def _components(g):
    n = len(g.vertices)
    t = g.triangles
    graph = coo_matrix((np.ones(len(t) * 2), (np.r_[t[:, 0], t[:, 1]], np.r_[t[:, 1], t[:, 2]])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@pytest.mark.parametrize("cut", list(clothing.CUTS))
def test_winding_is_outward(face_model, cut):
    """Every piece is consistently wound (no edge runs the same way in two triangles) and, closed
    with a fan over each open edge loop (the neck opening, the hem), encloses a positive volume:
    its triangles face out."""
    g = clothing.garment(Clothing(cut=cut, seed=0), face_model.mesh(), face_model)
    v = g.vertices.astype(np.float64)
    label = _components(g)
    pieces = label[g.triangles[:, 0]]
    assert len(np.unique(pieces)) == {"collar_shirt": 2, "hoodie": 5}.get(cut, 1)
    for piece in np.unique(pieces):
        t = g.triangles[pieces == piece]
        directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
        assert len(np.unique(directed, axis=0)) == len(directed), (cut, piece, "inconsistent winding")
        # Edges without a twin running the other way are on an open loop: close each with a fan.
        key = directed[:, 0].astype(np.int64) * len(v) + directed[:, 1]
        twin = directed[:, 1].astype(np.int64) * len(v) + directed[:, 0]
        open_edges = directed[~np.isin(key, twin)]
        caps = []
        if len(open_edges):
            loops = _components_of_edges(open_edges, len(v))
            for loop in np.unique(loops):
                e = open_edges[loops == loop]
                centre = v[np.unique(e)].mean(0)
                caps.append(np.stack([v[e[:, 1]], v[e[:, 0]], np.broadcast_to(centre, (len(e), 3))], 1))
        tri = np.concatenate([v[t], *caps])
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert volume > 0, (cut, piece, volume)


def _components_of_edges(edges, n):
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1][edges[:, 0]]


def _scene(model, focal_mm, fraction, shift, rotation):
    """SceneParams at the given framing, made as SceneSampler._camera does."""
    camera = load_config()["camera"]
    distance = focal_mm / 36.0 * camera["face_size"] / fraction
    cm_per_frame = distance * 36.0 / focal_mm
    ox, oy, oz = camera["centre_offset"]
    translation = (shift[0] * cm_per_frame + ox, shift[1] * cm_per_frame + oy, oz)
    return SceneParams(index=0, seed=0, identity=np.zeros(model.num_identity, np.float32),
                       expression=np.zeros(model.num_expressions, np.float32), head_rotation=rotation,
                       head_translation=translation, focal_mm=focal_mm, camera_distance=distance)


def _world(points, posed):
    """As parts.dressing poses a garment: rigidly with the head."""
    return (points - HEAD_PIVOT) @ np.asarray(posed.head_R).T + np.asarray(posed.head_t)


def test_no_framing_shows_the_hem(face_model):
    """With the sampler's extreme cameras (focal, face size, shift) and each extreme head pose, or
    a turned head tilted and rolled as far as two standard deviations together, no point of the hem
    (the garment's lowest ring) is in the image unless the garment hides it."""
    config = load_config()
    camera, pose = config["camera"], config["head_pose"]
    g = clothing.garment(Clothing(cut="crew_neck"), face_model.mesh(), face_model)
    vertices = g.vertices.astype(np.float64)
    hem = vertices[:, 1] < vertices[:, 1].min() + 0.5
    assert hem.sum() >= clothing.COLUMNS
    s, p, r, y = camera["shift"], pose["pitch_max"], pose["roll_max"], pose["yaw_max"]
    p2, r2 = 2 * pose["pitch_std"], 2 * pose["roll_std"]
    poses = [(0, -p, 0), (0, p, 0), (0, 0, -r), (0, 0, r), (-y, 0, 0), (y, 0, 0),
             *itertools.product((-y, 0, y), (-p2, p2), (-r2, r2))]
    for rotation, focal, fraction, shift in itertools.product(poses, camera["focal_mm"], camera["face_fraction"],
                                                              ((s, -s), (s, s))):  # yaw covers both sides
        # The head's rotation, translation and camera as pose_scene makes them (the mesh itself
        # is not needed here).
        posed = _posed(_scene(face_model, focal, fraction, shift, rotation), np.zeros((1, 3), np.float32))
        cam = posed.camera
        points = cam.to_camera(_world(vertices[hem], posed))
        uv = cam.project_camera(points)
        seen = (points[:, 2] > 1.0) & (uv[:, 0] > -0.5) & (uv[:, 0] < cam.width - 0.5) \
            & (uv[:, 1] > -0.5) & (uv[:, 1] < cam.height - 0.5)
        if not seen.any():
            continue
        # In the frame: the garment in front of it must hide it (the ray to the camera hits a
        # triangle; only those whose image box holds the point can).
        world = _world(vertices, posed)
        all_points = cam.to_camera(world)
        box = cam.project_camera(all_points)[g.triangles]
        in_front = (all_points[g.triangles, 2] > 1.0).all(1)
        for q, (a, b) in zip(_world(vertices[hem][seen], posed)[::6], uv[seen][::6]):  # every 3 cm or so
            near = in_front & (box[..., 0].min(1) <= a) & (box[..., 0].max(1) >= a) \
                & (box[..., 1].min(1) <= b) & (box[..., 1].max(1) >= b)
            towards = (cam.centre - q) / np.linalg.norm(cam.centre - q)
            assert _ray_hits(q[None], towards[None], world[g.triangles[near]])[0], \
                f"hem seen at focal {focal}, face {fraction}, shift {shift}, yaw/pitch/roll {rotation}"


def _covered(pixels, triangles_uv) -> np.ndarray:
    """Which pixel centres (N, 2) lie inside any of the projected triangles (T, 3, 2) facing the camera."""
    a, b, c = triangles_uv[:, 0], triangles_uv[:, 1], triangles_uv[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # Counter-clockwise seen from outside is clockwise in image rows (v down): negative area here.
    a, b, c = a[area < 0], b[area < 0], c[area < 0]
    out = np.zeros(len(pixels), bool)
    for i, q in enumerate(pixels):
        d1 = (b[:, 0] - a[:, 0]) * (q[1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (q[0] - a[:, 0])
        d2 = (c[:, 0] - b[:, 0]) * (q[1] - b[:, 1]) - (c[:, 1] - b[:, 1]) * (q[0] - b[:, 0])
        d3 = (a[:, 0] - c[:, 0]) * (q[1] - c[:, 1]) - (a[:, 1] - c[:, 1]) * (q[0] - c[:, 0])
        out[i] = ((d1 <= 0) & (d2 <= 0) & (d3 <= 0)).any()
    return out


def test_bottom_row_is_dressed(face_model):
    """With the smallest face pushed up the frame, the image's bottom row shows garment (or head),
    checked with the real camera: edge to edge with the head upright, and its middle 40 % with the
    head (and so, rigidly, the body) pitched 45 degrees either way, where a real photo too shows
    background beside a body that leans away or towards the camera."""
    config = load_config()
    camera, pose = config["camera"], config["head_pose"]
    shaped = face_model.mesh()
    g = clothing.garment(Clothing(cut="crew_neck"), shaped, face_model)
    skin = np.isin(face_model.triangle_region, [face_model.region_names.index(r) for r in SKIN])
    for focal, pitch in itertools.product(camera["focal_mm"], (-pose["pitch_max"], 0, pose["pitch_max"])):
        params = _scene(face_model, focal, camera["face_fraction"][0], (0.0, camera["shift"]), (0.0, pitch, 0.0))
        posed = pose_scene(params, face_model)
        cam = posed.camera
        tris = []
        for v, t in ((g.vertices, g.triangles), (shaped, face_model.triangles[skin])):
            p = cam.to_camera(_world(v.astype(np.float64), posed))
            keep = (p[t, 2] > 1.0).all(1)
            tris.append(cam.project_camera(p)[t[keep]])
        tris = np.concatenate(tris)
        margin = 0 if pitch == 0 else int(cam.width * 0.3)
        columns = np.arange(margin, cam.width - margin, 8.0)
        bottom = np.stack([columns, np.full(len(columns), cam.height - 1.0)], 1)
        near = (tris[..., 1].max(1) > cam.height - 2) & (tris[..., 1].min(1) < cam.height)
        covered = _covered(bottom, tris[near])
        assert covered.all(), f"bottom row bare at focal {focal}, pitch {pitch}: columns {bottom[~covered, 0]}"
