"""Approximate nearest neighbours (HNSW, hnswlib) per owner, saved beside the SQLite store.

The memories table is the truth. Triggers log every change to it (memory_vector_log, ids
only); an owner's graph remembers the last change it applied and replays newer ones before a
query, reading each changed memory's current row, so replaying twice is harmless. A saved
graph is `<owner>.<seq>.hnsw` plus its live ids, written to temporary files and renamed (the
graph last), so a crash leaves the previous pair or none; a graph that is missing or does not
load is rebuilt from the table. A forgotten memory's slot is overwritten with noise before it
is marked deleted, and files that held it are rewritten at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import hnswlib
import numpy as np
from sqlalchemy import Engine

from spud.memory.embed import DIM

log = logging.getLogger(__name__)
M, EF_CONSTRUCTION, EF_SEARCH = 16, 100, 96
SAVE_AFTER = 1000  # changes a saved graph may lag behind (replayed on the next start)
BATCH = 500  # ids per SQL statement
CURRENT = "user_id = ? AND org_id = ? AND superseded_by IS NULL AND vector IS NOT NULL"


class _Graph:
    """One owner's graph: its live ids, the change it reflects, and what its file holds."""

    def __init__(self, graph: hnswlib.Index) -> None:
        self.graph = graph
        self.live: set[int] = set()
        self.deleted: set[int] = set()  # labels in the graph, marked deleted, holding noise
        self.seq = 0  # the last logged change applied
        self.saved: set[int] = set()  # the ids the newest file holds
        self.unsaved = 0
        self.lock = threading.RLock()


class HnswIndex:
    """Approximate cosine search per owner; files under `directory` (None: in memory only)."""

    def __init__(self, engine: Engine, directory: Path | None, threads: int = 0) -> None:
        self.engine = engine
        self.directory = directory
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._graphs: dict[tuple[str, str], _Graph] = {}
        self._lock = threading.Lock()

    def _new_graph(self, capacity: int) -> _Graph:
        graph = hnswlib.Index(space="ip", dim=DIM)
        graph.init_index(max_elements=capacity, M=M, ef_construction=EF_CONSTRUCTION)
        graph.set_num_threads(self.threads)
        return _Graph(graph)

    # -- the interface ------------------------------------------------------------------------

    def search(
        self, user_id: str, org_id: str, vector: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        g = self._ready(user_id, org_id)
        with g.lock:
            k = min(limit, len(g.live))
            if k <= 0:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(1, DIM)
            for ef in (max(EF_SEARCH, k), g.graph.element_count):  # exhaustive if need be
                g.graph.set_ef(ef)
                try:
                    labels, distances = g.graph.knn_query(query, k=k)
                    break
                except RuntimeError:  # too few reachable among deleted slots
                    continue
            else:
                return self._exact(g, query[0], k)
        return [(int(i), 1.0 - float(d)) for i, d in zip(labels[0], distances[0], strict=True)]

    def cosines(
        self, user_id: str, org_id: str, ids: list[int], vector: np.ndarray
    ) -> dict[int, float]:
        g = self._ready(user_id, org_id)
        with g.lock:
            have = [i for i in ids if i in g.live]
            if not have:
                return {}
            rows = np.asarray(g.graph.get_items(have, return_type="numpy"), dtype=np.float32)
        return dict(zip(have, (rows @ vector).tolist(), strict=True))

    def forgotten(self, user_id: str, org_id: str, ids: list[int]) -> None:
        """Apply the deletions now; rewrite the owner's files if one held any of these ids."""
        held = False
        for _, path in self._files(user_id, org_id):
            try:
                held = held or bool(np.isin(np.load(path.with_suffix(".npy")), ids).any())
            except (OSError, ValueError):
                held = True  # unreadable: rewrite to be sure
        if (user_id, org_id) not in self._graphs and not held:
            return  # not loaded here, and no file has them: nothing holds their vectors
        g = self._ready(user_id, org_id)
        with g.lock:
            if held:
                self._save(user_id, org_id, g)

    # -- keeping in step ----------------------------------------------------------------------

    def _ready(self, user_id: str, org_id: str) -> _Graph:
        """The owner's graph with every logged change applied (loaded or built the first time)."""
        key = (user_id, org_id)
        with self._lock:
            g = self._graphs.get(key)
            if g is None:
                g = self._graphs[key] = self._open(user_id, org_id)
        with g.lock:
            changed = self._catch_up(user_id, org_id, g)
            if changed and self.directory is not None and g.unsaved >= SAVE_AFTER:
                self._save(user_id, org_id, g)
        return g

    def _catch_up(self, user_id: str, org_id: str, g: _Graph) -> int:
        """Apply the changes logged after g.seq; how many memories they touched."""
        with self.engine.connect() as conn:
            last = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM memory_vector_log")
            last = last.scalar()
            if last <= g.seq:
                return 0
            rows = conn.exec_driver_sql(  # only what was logged since: other owners' too
                "SELECT memory_id FROM memory_vector_log "
                "WHERE seq > ? AND seq <= ? AND user_id = ? AND org_id = ?",
                (g.seq, last, user_id, org_id),
            ).all()
            ids = sorted({r[0] for r in rows})
            vectors = self._vectors(conn, user_id, org_id, ids) if ids else {}
        if ids:
            self._apply(g, ids, vectors)
        g.seq = last
        g.unsaved += len(ids)
        return len(ids)

    def _vectors(self, conn, user_id: str, org_id: str, ids: list[int]) -> dict[int, bytes]:
        """The current vectors of these memories (absent: deleted, superseded or no vector)."""
        found: dict[int, bytes] = {}
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            marks = ",".join("?" * len(part))
            found |= dict(
                conn.exec_driver_sql(
                    f"SELECT id, vector FROM memories WHERE id IN ({marks}) AND {CURRENT}",
                    (*part, user_id, org_id),
                ).all()
            )
        return found

    def _apply(self, g: _Graph, ids: Iterable[int], vectors: dict[int, bytes]) -> None:
        """Make the graph hold exactly these memories' current vectors."""
        gone = [i for i in ids if i not in vectors and i in g.live]
        if gone:  # wipe: the slot keeps noise, never the forgotten vector
            g.graph.add_items(self._random(len(gone)), gone, num_threads=1)
            for label in gone:
                g.graph.mark_deleted(label)
            g.live.difference_update(gone)
            g.deleted.update(gone)
        if vectors:
            labels = list(vectors)
            matrix = np.frombuffer(b"".join(vectors.values()), dtype=np.float32)
            self._add(g, labels, matrix.reshape(len(labels), DIM))
        if len(g.deleted) > max(1000, len(g.live) // 4):
            self._compact(g)

    def _add(self, g: _Graph, labels: list[int], matrix: np.ndarray) -> None:
        new = sum(1 for i in labels if i not in g.live and i not in g.deleted)
        needed = g.graph.element_count + new
        if needed > g.graph.get_max_elements():
            g.graph.resize_index(max(needed, int(g.graph.get_max_elements() * 1.5)))
        # An id in the graph (live, or deleted and back) is updated in place.
        g.graph.add_items(matrix, labels, num_threads=self.threads)
        g.live.update(labels)
        g.deleted.difference_update(labels)

    def _compact(self, g: _Graph) -> None:
        """A new graph of the live vectors only: deleted slots (noise) are dropped."""
        live = sorted(g.live)
        matrix = (
            np.asarray(g.graph.get_items(live, return_type="numpy"), dtype=np.float32)
            if live
            else np.zeros((0, DIM), dtype=np.float32)
        )
        fresh = self._new_graph(max(1024, len(live) + 1024))
        if live:
            fresh.graph.add_items(matrix, live, num_threads=self.threads)
        g.graph, g.live, g.deleted = fresh.graph, set(live), set()
        g.unsaved += 1

    def _random(self, n: int) -> np.ndarray:
        noise = np.random.default_rng().standard_normal((n, DIM)).astype(np.float32)
        return noise / np.linalg.norm(noise, axis=1, keepdims=True)

    def _exact(self, g: _Graph, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        live = sorted(g.live)
        scores = np.asarray(g.graph.get_items(live, return_type="numpy"), np.float32) @ query
        top = np.argsort(-scores)[:k]
        return [(live[i], float(scores[i])) for i in top]

    # -- files ----------------------------------------------------------------------------------

    def _stem(self, user_id: str, org_id: str) -> str:
        return hashlib.sha256(f"{user_id}\0{org_id}".encode()).hexdigest()[:24]

    def _files(self, user_id: str, org_id: str) -> list[tuple[int, Path]]:
        """(seq, graph file) of the owner's saved graphs, newest first."""
        if self.directory is None or not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(f"{self._stem(user_id, org_id)}.*.hnsw"):
            try:
                found.append((int(path.name.split(".")[1]), path))
            except ValueError:
                continue
        return sorted(found, reverse=True)

    @contextmanager
    def _file_lock(self, user_id: str, org_id: str):
        """One process at a time writes an owner's files."""
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{self._stem(user_id, org_id)}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _open(self, user_id: str, org_id: str) -> _Graph:
        """The newest saved graph that loads, else one built from the table."""
        with self.engine.connect() as conn:
            last = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM memory_vector_log")
            last = last.scalar()
        for seq, path in self._files(user_id, org_id):
            try:
                if seq > last:  # newer than the table (a database restored from a copy?)
                    raise ValueError(f"it is at change {seq}, the database at {last}")
                return self._load(path, seq)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("memory: vector index %s does not load (%s); rebuilding", path, exc)
                for broken in (path, path.with_suffix(".npy")):  # files appear complete, by
                    broken.unlink(missing_ok=True)  # rename: this one will not load again
        return self._build(user_id, org_id)

    def _load(self, path: Path, seq: int) -> _Graph:
        live = np.load(path.with_suffix(".npy"))
        graph = hnswlib.Index(space="ip", dim=DIM)
        graph.load_index(str(path), max_elements=0)
        graph.set_num_threads(self.threads)
        g = _Graph(graph)
        labels = set(g.graph.get_ids_list())
        g.live = {int(i) for i in live}
        if not g.live <= labels:
            raise ValueError("its live ids are not all in the graph")
        g.deleted = labels - g.live
        g.seq, g.saved = seq, set(g.live)
        return g

    def _build(self, user_id: str, org_id: str) -> _Graph:
        """All current vectors of the owner, read once; later changes come from the log."""
        with self.engine.connect() as conn:
            # The log position first: a change after it is replayed, harmlessly if already read.
            seq = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM memory_vector_log")
            seq = seq.scalar()
            rows = conn.exec_driver_sql(
                f"SELECT id, vector FROM memories WHERE {CURRENT}", (user_id, org_id)
            ).all()
        g = self._new_graph(max(1024, len(rows) + 1024))
        if rows:
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            self._add(g, [r[0] for r in rows], matrix.reshape(len(rows), DIM))
        g.seq, g.unsaved = seq, len(rows)
        if self.directory is not None and rows:
            self._save(user_id, org_id, g)
        return g

    def _save(self, user_id: str, org_id: str, g: _Graph) -> None:
        """Write the graph (caught up under the file lock) and remove the owner's older files."""
        assert self.directory is not None
        with self._file_lock(user_id, org_id):
            self._catch_up(user_id, org_id, g)
            name = f"{self._stem(user_id, org_id)}.{g.seq}"
            ids_file, graph_file = self.directory / f"{name}.npy", self.directory / f"{name}.hnsw"
            tmp_ids, tmp_graph = (self.directory / f"{name}.{os.getpid()}.tmp{n}" for n in (1, 2))
            with open(tmp_ids, "wb") as out:
                np.save(out, np.array(sorted(g.live), dtype=np.int64))
                out.flush()
                os.fsync(out.fileno())
            g.graph.save_index(str(tmp_graph))
            with open(tmp_graph, "rb+") as out:
                os.fsync(out.fileno())
            os.replace(tmp_ids, ids_file)
            os.replace(tmp_graph, graph_file)  # the commit point: a graph file has its ids
            for path in self.directory.glob(f"{self._stem(user_id, org_id)}.*"):
                if path.suffix != ".lock" and path not in (ids_file, graph_file):
                    path.unlink(missing_ok=True)
            _sync_directory(self.directory)
            g.saved, g.unsaved = set(g.live), 0


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
