"""The parametric face model: neutral mesh, identity and expression bases, topology, UVs, regions.

All arrays are NumPy. Units are the source model's (ICT-FaceKit: centimetres; +y up, +z out of the
face, the head centred near the origin). The cached form is one uncompressed `.npz` whose content hash
names the exact model a shard was rendered with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegen.errors import FacegenError
from facegen.paths import facegen_home

CACHE_NAME = "ict-facekit.npz"
IDENTITY_BLOCK = 4096  # columns of the identity modes per block in FaceModel.meshes (1.6 MB)


@dataclass(frozen=True, eq=False)
class FaceModel:
    neutral: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    uvs: np.ndarray  # (T, 2) float32 texture coordinates
    triangle_uvs: np.ndarray  # (F, 3) int32 indices into uvs, per triangle corner
    vertex_region: np.ndarray  # (V,) uint8 index into region_names
    triangle_region: np.ndarray  # (F,) uint8 index into region_names
    region_names: tuple[str, ...]
    identity_basis: np.ndarray  # (K_id, V, 3) float32, for N(0, 1) weights
    expression_basis: np.ndarray  # (K_ex, V, 3) float32, for weights in [0, 1]
    expression_names: tuple[str, ...]
    landmarks68: np.ndarray  # (68,) int32 vertex indices of the source's iBUG-68 markup
    model_id: str = "ict-facekit"  # topology id that landmark specs refer to
    source: str = ""
    hash: str = field(default="")

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def mesh(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices (V, 3) for identity weights (K_id,) and expression weights (K_ex,); None = zeros."""
        k_id, k_ex = self.num_identity, self.num_expressions
        identity = np.zeros(k_id, np.float32) if identity is None else identity
        expression = np.zeros(k_ex, np.float32) if expression is None else expression
        return self.meshes(np.asarray(identity)[None], np.asarray(expression)[None])[0]

    def meshes(self, identities: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        """Vertices (B, V, 3) float32 for B rows of identity weights (B, K_id) and expression weights
        (B, K_ex). Each mesh is the same, bit for bit, whichever batch it is made in.

        The cost is reading the identity modes (32 MB) from memory. They are read one block of
        IDENTITY_BLOCK columns at a time for the whole batch, so a batch reads them from DRAM once
        (per sample: 0.9 ms alone, ~0.5 ms in batches of 16). Each block is one float32 BLAS gemv per
        mesh; a gemm over the batch would be faster still, but its rounding depends on a row's place
        in the batch. Expression weights are sparse: one in-place axpy per active shape."""
        from scipy.linalg.blas import saxpy

        identities = np.asarray(identities, np.float32)
        expressions = np.asarray(expressions, np.float32)
        k = identities.shape[1]
        basis = self.identity_basis[:k].reshape(k, -1)
        out = np.empty((len(identities), basis.shape[1]), np.float32)
        for start in range(0, basis.shape[1], IDENTITY_BLOCK):
            block = basis[:, start:start + IDENTITY_BLOCK]
            for row, w in zip(out, identities):
                np.matmul(w, block, out=row[start:start + IDENTITY_BLOCK])
        out += self.neutral.reshape(-1)
        expression_basis = self.expression_basis.reshape(self.num_expressions, -1)
        for row, w in zip(out, expressions):
            for i in np.flatnonzero(w):
                saxpy(expression_basis[i], row, a=float(w[i]))  # row += w_i * shape_i, in place
        return out.reshape(len(identities), -1, 3)

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise FacegenError(f"unknown expression {name!r}; known: {', '.join(self.expression_names)}") from None

    def region_vertices(self, name: str) -> np.ndarray:
        """Vertex indices of a named region (see region_names)."""
        return np.flatnonzero(self.vertex_region == self.region_names.index(name))

    def region_triangles(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.triangle_region == self.region_names.index(name))

    def vertex_normals(self, vertices: np.ndarray) -> np.ndarray:
        """Area-weighted unit vertex normals of the given vertex positions (V, 3)."""
        return vertex_normals(vertices, self.triangles)

    # -- persistence ---------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "neutral": self.neutral,
            "triangles": self.triangles,
            "uvs": self.uvs,
            "triangle_uvs": self.triangle_uvs,
            "vertex_region": self.vertex_region,
            "triangle_region": self.triangle_region,
            "region_names": np.array(self.region_names),
            "identity_basis": self.identity_basis,
            "expression_basis": self.expression_basis,
            "expression_names": np.array(self.expression_names),
            "landmarks68": self.landmarks68,
            "model_id": np.array(self.model_id),
            "source": np.array(self.source),
        }

    def save(self, path: Path) -> Path:
        """Write the model as one `.npz` (written to a temporary name, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez(tmp, hash=np.array(self.hash), **self.arrays())
        tmp.replace(path)
        return path


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def with_hash(model: FaceModel) -> FaceModel:
    arrays = {k: v for k, v in model.arrays().items() if k != "source"}
    return FaceModel(**{**_fields(model), "hash": content_hash(arrays)})


def _fields(model: FaceModel) -> dict:
    return {f: getattr(model, f) for f in model.__dataclass_fields__}


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, np.float64)
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    fn = np.cross(b - a, c - a)  # length = 2 * area, so the sum is area weighted
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, triangles[:, k], fn)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n.astype(np.float32)


def default_model_path() -> Path:
    return facegen_home() / "models" / CACHE_NAME


_LOADED: dict[Path, FaceModel] = {}


def load_face_model(path: Path | str | None = None) -> FaceModel:
    """Load the cached face model (default: $FACEGEN_HOME/models/ict-facekit.npz), memoised per process."""
    path = Path(path) if path is not None else default_model_path()
    path = path.expanduser().resolve()
    if path in _LOADED:
        return _LOADED[path]
    if not path.exists():
        raise FacegenError(
            f"no face model at {path}. Build it once with `facegen assets import-ict [PATH]` "
            "(PATH: ICT-FaceKit-master.zip or a clone of https://github.com/ICT-VGL/ICT-FaceKit)."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # a truncated or foreign file
        raise FacegenError(f"cannot read face model {path}: {e}. Re-run `facegen assets import-ict`.") from e
    model = FaceModel(
        neutral=d["neutral"],
        triangles=d["triangles"],
        uvs=d["uvs"],
        triangle_uvs=d["triangle_uvs"],
        vertex_region=d["vertex_region"],
        triangle_region=d["triangle_region"],
        region_names=tuple(str(s) for s in d["region_names"]),
        identity_basis=d["identity_basis"],
        expression_basis=d["expression_basis"],
        expression_names=tuple(str(s) for s in d["expression_names"]),
        landmarks68=d["landmarks68"],
        model_id=str(d["model_id"]),
        source=str(d["source"]),
        hash=str(d["hash"]),
    )
    _LOADED[path] = model
    return model
