"""The metadata database: ``<root>/lamina.db`` (SQLite, WAL).

Holds what is not content-addressed: tags, image records, layer facts, snapshots and
containers (and, later, the build cache). Every multi-row change runs in one
transaction (``with db.tx() as c:``), so a crash leaves either the old or the new state.
Concurrent lamina processes serialise on SQLite's write lock (busy timeout 30 s).

Tables (schema version in ``PRAGMA user_version``):
  images(manifest PK, config, media_type, size, created, added, parent, intermediate, comment)
      one row per image manifest we hold; ``config`` is the image ID.
  tags(name PK, manifest)           name is canonical "docker.io/library/busybox:latest"
  repo_digests(name, digest, manifest)   "docker.io/library/busybox@<digest>" names image <manifest>
      on its registry (pulled/pushed): digest is the manifest itself, the index a multi-platform
      pull resolved, or the manifest a push sent (its layers compressed); GC keeps that document
  blob_sources(blob, repo)          repositories ("localhost:5000/me/app") known to hold the blob
      (pulled from, pushed to): push mounts from them instead of uploading
  layer_copies(source, blob)        blob is the compressed copy push made of an uncompressed layer
      blob; kept (by GC) while the source is, so a second push does not compress again
  layers(diff_id PK, content_size)  facts learned when a layer was ingested
  layer_blobs(blob PK, diff_id, media_type)   which compressed blob holds which diff
  snapshots(chain_id PK, parent, dir, diff_id, size, created)   unpacked layers
  build_cache(key PK, parent, instr, image, sources, created)   a build step's result
  build_memo(key PK, data, created)   replay record of a fully cached build (builder/fastpath.py)
  containers(id PK, name, image, chain_id, created, data, ps)   image = manifest digest in use; ps:
      what ``ps`` shows of the record, written with it (lamina.runtime.psindex)
  meta(key PK, value)
"""

from __future__ import annotations

# _sqlite3, not sqlite3: the package adds datetime adapters lamina never passes and imports
# datetime and collections for them (~3 ms of every `ps`); the classes are the same objects
import _sqlite3 as sqlite3
import _thread
import os

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS images(
    manifest TEXT PRIMARY KEY, config TEXT NOT NULL, media_type TEXT NOT NULL,
    manifest_size INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, created REAL,
    added REAL NOT NULL, parent TEXT, intermediate INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS images_config ON images(config);
CREATE TABLE IF NOT EXISTS tags(name TEXT PRIMARY KEY, manifest TEXT NOT NULL, added REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tags_manifest ON tags(manifest);
CREATE TABLE IF NOT EXISTS repo_digests(name TEXT NOT NULL, digest TEXT NOT NULL, manifest TEXT NOT NULL,
    PRIMARY KEY(name, digest));
CREATE INDEX IF NOT EXISTS repo_digests_manifest ON repo_digests(manifest);
CREATE TABLE IF NOT EXISTS blob_sources(blob TEXT NOT NULL, repo TEXT NOT NULL, PRIMARY KEY(blob, repo));
CREATE TABLE IF NOT EXISTS layer_copies(source TEXT NOT NULL, blob TEXT NOT NULL, media_type TEXT NOT NULL,
    PRIMARY KEY(source, media_type));
CREATE TABLE IF NOT EXISTS layers(diff_id TEXT PRIMARY KEY, content_size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS layer_blobs(blob TEXT PRIMARY KEY, diff_id TEXT NOT NULL,
    media_type TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS layer_blobs_diff ON layer_blobs(diff_id);
CREATE TABLE IF NOT EXISTS snapshots(chain_id TEXT PRIMARY KEY, parent TEXT, dir TEXT NOT NULL,
    diff_id TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS build_cache(key TEXT PRIMARY KEY, parent TEXT NOT NULL, instr TEXT NOT NULL,
    image TEXT NOT NULL, sources TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache(parent);
CREATE TABLE IF NOT EXISTS build_memo(key TEXT PRIMARY KEY, data TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS containers(id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL,
    image TEXT NOT NULL, chain_id TEXT, created REAL NOT NULL, data TEXT, ps BLOB);
"""


class Metadata:
    """A connection to lamina.db. Cheap to open; create one per command."""

    def __init__(self, path: str) -> None:
        self.path = path
        new = not os.path.exists(path)
        if new:  # 0600 from the start; SQLite gives the -wal and -shm files the same mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        # One connection, shared by the threads of a command (push compresses layers in
        # parallel, each recording its copy): a transaction holds the lock from BEGIN to
        # COMMIT, so no thread's BEGIN or read lands inside another thread's transaction.
        self.lock = _thread.RLock()
        self.conn.execute("PRAGMA busy_timeout=30000")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # busy, locked, I/O: not damage
                raise
            self.conn.close()
            from lamina.errors import Corrupt
            raise Corrupt(f"{path}: {e}: the store's metadata database is damaged; restore it "
                          f"from a backup or use another store (--root)") from None
        if new or version != SCHEMA_VERSION:
            for attempt in range(100):  # SQLite does not retry a journal-mode switch on BUSY
                try:
                    if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        self.conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError:  # another lamina process is creating the store
                    if attempt == 99:
                        raise
                    import time
                    time.sleep(0.02)
            with self.tx() as c:
                _migrate(c)
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self.conn.close()

    def tx(self) -> _Tx:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error)."""
        return _Tx(self.conn, self.lock)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()


class _Tx:
    """``with db.tx() as c``: the connection inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK when
    the block raises), holding the connection's lock throughout (other threads of the process
    wait; the same thread may nest reads). A class rather than contextlib's decorator: ``ps``
    opens the DB too, and contextlib costs it collections and functools."""

    def __init__(self, conn: sqlite3.Connection, lock) -> None:
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, typ, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if typ is not None else "COMMIT")
        finally:
            self.lock.release()


def _migrate(c: sqlite3.Connection) -> None:
    """Bring tables an older schema made up to date (run inside the schema transaction).

    v3 -> v4: repo_digests gains ``digest`` (what ``name@digest`` names on the registry) and
    is keyed by (name, digest); every v3 row named its own manifest.
    v4 -> v5: containers gain ``ps`` (NULL for old rows: ps derives it from ``data``)."""
    cols = [r[1] for r in c.execute("PRAGMA table_info(containers)")]
    if cols and "ps" not in cols:
        c.execute("ALTER TABLE containers ADD COLUMN ps BLOB")
    cols = [r[1] for r in c.execute("PRAGMA table_info(repo_digests)")]
    if cols and "digest" not in cols:
        c.execute("ALTER TABLE repo_digests RENAME TO repo_digests_v3")
        c.execute("CREATE TABLE repo_digests(name TEXT NOT NULL, digest TEXT NOT NULL, manifest TEXT NOT NULL, "
                  "PRIMARY KEY(name, digest))")
        c.execute("INSERT OR IGNORE INTO repo_digests(name, digest, manifest) "
                  "SELECT name, manifest, manifest FROM repo_digests_v3")
        c.execute("DROP TABLE repo_digests_v3")
