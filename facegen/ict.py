"""Import the official ICT-FaceKit "Light" model into facegen's cached FaceModel.

Reads either GitHub's zip (`ICT-FaceKit-master.zip`, read in place, nothing unpacked to disk) or an
unpacked folder / `git clone` holding `FaceXModel/`. The model is MIT licensed, (c) 2020 USC ICT.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.face_model import FaceModel, with_hash
from facegen.paths import shared_dir

GET_ICT = (
    "Get ICT-FaceKit from https://github.com/ICT-VGL/ICT-FaceKit (\"Download ZIP\" or `git clone`) "
    "and pass it: `facegen assets import-ict PATH/ICT-FaceKit-master.zip` or `... PATH/ICT-FaceKit`."
)

NEUTRAL = "generic_neutral_mesh.obj"
INDICES = "vertex_indices.json"
NUM_IDENTITIES = 100

# Vertex and polygon ranges (inclusive) from the ICT-FaceKit README's topology tables. The eyeballs
# are split into sclera and iris as the README's "Eyeball Details" table does.
REGIONS: list[tuple[str, tuple[int, int], tuple[int, int]]] = [
    ("face", (0, 9408), (0, 9229)),
    ("head_neck", (9409, 11247), (9230, 11143)),
    ("mouth_socket", (11248, 13293), (11144, 13225)),
    ("eye_socket_left", (13294, 13677), (13226, 13629)),
    ("eye_socket_right", (13678, 14061), (13630, 14033)),
    ("gums_tongue", (14062, 17038), (14034, 17005)),
    ("teeth", (17039, 21450), (17006, 21495)),
    ("sclera_left", (21451, 22220), (21496, 22295)),
    ("iris_left", (22221, 23020), (22296, 23093)),
    ("sclera_right", (23021, 23790), (23094, 23893)),
    ("iris_right", (23791, 24590), (23894, 24691)),
    ("lacrimal_left", (24591, 24794), (24692, 24854)),
    ("lacrimal_right", (24795, 24998), (24855, 25017)),
    ("eye_blend_left", (24999, 25022), (25018, 25032)),
    ("eye_blend_right", (25023, 25046), (25033, 25047)),
    ("eye_occlusion_left", (25047, 25198), (25048, 25175)),
    ("eye_occlusion_right", (25199, 25350), (25176, 25303)),
    ("eyelashes_left", (25351, 26034), (25304, 25843)),
    ("eyelashes_right", (26035, 26718), (25844, 26383)),
]


@dataclass
class _Source:
    """Uniform read access to FaceXModel/ files inside a zip or a folder."""

    path: Path
    zip: zipfile.ZipFile | None
    prefix: str  # inside the zip: "ICT-FaceKit-master/FaceXModel/"; in a folder: the FaceXModel dir

    def names(self) -> list[str]:
        if self.zip is not None:
            return [n[len(self.prefix):] for n in self.zip.namelist() if n.startswith(self.prefix) and "/" not in n[len(self.prefix):]]
        return [p.name for p in Path(self.prefix).iterdir() if p.is_file()]

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(self.prefix + name)
            return (Path(self.prefix) / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise FacegenError(f"{self.path}: FaceXModel/{name} is missing; the ICT-FaceKit copy is incomplete. {GET_ICT}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise FacegenError(f"{self.path}: cannot read FaceXModel/{name}: {e}") from None


def default_ict_source() -> Path | None:
    shared = shared_dir()
    if shared is None:
        return None
    zip_path = shared / "assets" / "ict-facekit" / "ICT-FaceKit-master.zip"
    return zip_path if zip_path.exists() else None


def _open_source(path: Path) -> _Source:
    path = Path(path).expanduser()
    if not path.exists():
        raise FacegenError(f"{path} does not exist. {GET_ICT}")
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise FacegenError(f"{path} is not a zip file (expected ICT-FaceKit-master.zip or a folder). {GET_ICT}") from None
        hits = [n for n in zf.namelist() if n.endswith("FaceXModel/" + NEUTRAL)]
        if not hits:
            raise FacegenError(f"{path} holds no FaceXModel/{NEUTRAL}: not an ICT-FaceKit zip. {GET_ICT}")
        return _Source(path, zf, hits[0][: -len(NEUTRAL)])
    for cand in (path, path / "FaceXModel"):
        if (cand / NEUTRAL).exists():
            return _Source(path, None, str(cand))
    raise FacegenError(f"{path} holds no FaceXModel/{NEUTRAL}: not an ICT-FaceKit folder. {GET_ICT}")


def _parse_vertices(data: bytes, name: str, expected: int | None) -> np.ndarray:
    vlines = [line[2:] for line in data.splitlines() if line.startswith(b"v ")]
    try:
        flat = np.array(b" ".join(vlines).split(), dtype=np.float64)
    except ValueError as e:
        raise FacegenError(f"{name}: malformed vertex line ({e}); the file is damaged. {GET_ICT}") from None
    if expected is not None and len(vlines) != expected:
        raise FacegenError(
            f"{name}: {len(vlines)} vertices, expected {expected} (truncated or not ICT topology). {GET_ICT}"
        )
    if flat.size != 3 * len(vlines):
        raise FacegenError(f"{name}: vertex lines must have exactly 3 coordinates; the file is damaged.")
    return flat.reshape(-1, 3)


def _parse_topology(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Triangles, per-corner UV indices, UVs and the source polygon of each triangle.

    Quads (a, b, c, d) split along a-c into (a, b, c) and (a, c, d), the same for every quad."""
    uv_lines = [line[3:] for line in data.splitlines() if line.startswith(b"vt ")]
    uvs = np.array(b" ".join(uv_lines).split(), dtype=np.float64).reshape(-1, 2)
    tris, tri_uv, tri_poly = [], [], []
    poly = 0
    for line in data.splitlines():
        if not line.startswith(b"f "):
            continue
        corners = [c.split(b"/") for c in line.split()[1:]]
        vi = [int(c[0]) - 1 for c in corners]
        ti = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners]
        if len(vi) < 3:
            raise FacegenError(f"{name}: face with {len(vi)} corners at polygon {poly}")
        for k in range(1, len(vi) - 1):
            tris.append((vi[0], vi[k], vi[k + 1]))
            tri_uv.append((ti[0], ti[k], ti[k + 1]))
            tri_poly.append(poly)
        poly += 1
    return (
        np.array(tris, np.int32),
        np.array(tri_uv, np.int32),
        uvs.astype(np.float32),
        np.array(tri_poly, np.int32),
    )


def import_ict(path: Path | str | None = None, progress=None) -> FaceModel:
    """Read ICT-FaceKit (zip or folder) into a FaceModel with its content hash.

    `progress(done, total, name)` is called after each OBJ, for a progress bar."""
    if path is None:
        path = default_ict_source()
        if path is None:
            raise FacegenError(f"no ICT-FaceKit found next to this checkout (../shared/assets/ict-facekit). {GET_ICT}")
    src = _open_source(Path(path))
    names = set(src.names())
    try:
        indices = json.loads(src.read(INDICES))
    except json.JSONDecodeError as e:
        raise FacegenError(f"{src.path}: FaceXModel/{INDICES} is not valid JSON: {e}") from None

    identity_files = [f"identity{i:03d}.obj" for i in range(NUM_IDENTITIES)]
    arkit = list(indices["expressions"])
    # The "4 extra" shapes: every other OBJ that is neither neutral nor identity, in name order.
    extras = sorted(
        n[:-4] for n in names
        if n.endswith(".obj") and n != NEUTRAL and not re.fullmatch(r"identity\d+\.obj", n) and n[:-4] not in arkit
    )
    expression_names = arkit + extras
    total = 1 + len(identity_files) + len(expression_names)

    neutral_bytes = src.read(NEUTRAL)
    neutral = _parse_vertices(neutral_bytes, NEUTRAL, None)
    triangles, triangle_uvs, uvs, triangle_polygon = _parse_topology(neutral_bytes, NEUTRAL)
    n_vert = len(neutral)
    if progress:
        progress(1, total, NEUTRAL)

    n_faces = neutral_bytes.count(b"\nf ")

    def deltas(files: list[str], done0: int) -> np.ndarray:
        out = np.empty((len(files), n_vert, 3), np.float32)
        for k, f in enumerate(files):
            data = src.read(f)
            out[k] = _parse_vertices(data, f, n_vert) - neutral
            faces = data.count(b"\nf ")
            if faces != n_faces:  # vertices come first: a cut file loses its faces
                raise FacegenError(f"{f}: {faces} faces, expected {n_faces} (truncated). {GET_ICT}")
            if progress:
                progress(done0 + k + 1, total, f)
        return out

    identity_basis = deltas(identity_files, 1)
    expression_basis = deltas([n + ".obj" for n in expression_names], 1 + len(identity_files))

    vertex_region = np.zeros(n_vert, np.uint8)
    n_poly = int(triangle_polygon.max()) + 1
    polygon_region = np.zeros(n_poly, np.uint8)
    if n_vert != REGIONS[-1][1][1] + 1 or n_poly != REGIONS[-1][2][1] + 1:
        raise FacegenError(f"{src.path}: {n_vert} vertices / {n_poly} polygons; ICT-FaceKit Light has 26719 / 26384")
    for r, (_, (v0, v1), (p0, p1)) in enumerate(REGIONS):
        vertex_region[v0 : v1 + 1] = r
        polygon_region[p0 : p1 + 1] = r

    model = FaceModel(
        neutral=neutral.astype(np.float32),
        triangles=triangles,
        uvs=uvs,
        triangle_uvs=triangle_uvs,
        vertex_region=vertex_region,
        triangle_region=polygon_region[triangle_polygon],
        region_names=tuple(r[0] for r in REGIONS),
        identity_basis=identity_basis,
        expression_basis=expression_basis,
        expression_names=tuple(expression_names),
        landmarks68=np.array(indices["idx_to_landmark_verts"], np.int32),
        model_id="ict-facekit",
        source=f"ICT-FaceKit Light (MIT, (c) 2020 USC ICT) from {src.path}",
    )
    return with_hash(model)
