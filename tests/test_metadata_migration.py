"""Schema v3 -> v4: a store made by the previous lamina opens, and its repo digests survive."""

from __future__ import annotations

import sqlite3

from lamina.metadata import SCHEMA_VERSION, Metadata


def test_v3_repo_digests_are_migrated(tmp_path):
    path = str(tmp_path / "lamina.db")
    c = sqlite3.connect(path)
    c.executescript("""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE repo_digests(name TEXT NOT NULL, manifest TEXT NOT NULL, PRIMARY KEY(name, manifest));
        INSERT INTO repo_digests VALUES('docker.io/library/busybox', 'sha256:%s');
        PRAGMA user_version=3;
    """ % ("a" * 64))
    c.commit()
    c.close()
    db = Metadata(path)
    assert db.one("PRAGMA user_version")[0] == SCHEMA_VERSION == 5
    assert db.query("SELECT name, digest, manifest FROM repo_digests") == [
        ("docker.io/library/busybox", "sha256:" + "a" * 64, "sha256:" + "a" * 64)]
    # keyed by (name, digest) now: an index digest beside the manifest's own
    with db.tx() as t:
        t.execute("INSERT INTO repo_digests VALUES(?,?,?)",
                  ("docker.io/library/busybox", "sha256:" + "b" * 64, "sha256:" + "a" * 64))
    assert len(db.query("SELECT * FROM repo_digests")) == 2
    assert db.query("SELECT name FROM sqlite_master WHERE name IN ('blob_sources', 'layer_copies') ORDER BY name") == [
        ("blob_sources",), ("layer_copies",)]
    db.close()
    Metadata(path).close()  # opening again is a no-op
