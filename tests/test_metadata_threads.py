"""One store connection shared by a command's threads (push compresses layers in parallel,
each recording its copy in a transaction): transactions and reads of different threads never
interleave on it ("cannot start a transaction within a transaction" before)."""

from __future__ import annotations

import threading

from lamina.metadata import Metadata


def test_threads_share_one_connection_without_interleaving(tmp_path):
    db = Metadata(str(tmp_path / "lamina.db"))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(200):
                with db.tx() as c:
                    c.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (f"t{n}-{i}", "x"))
                    # a read of the same thread inside its own transaction sees its write
                    assert db.one("SELECT value FROM meta WHERE key=?", (f"t{n}-{i}",)) == ("x",)
                db.query("SELECT count(*) FROM meta")
        except BaseException as e:  # noqa: BLE001 -- reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.one("SELECT count(*) FROM meta WHERE key LIKE 't%'") == (800,)
    # a failing block rolls back and frees the connection for the others
    try:
        with db.tx() as c:
            c.execute("INSERT INTO meta(key, value) VALUES('gone', 'x')")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    t = threading.Thread(target=lambda: db.query("SELECT 1"))
    t.start()
    t.join(timeout=30)
    assert not t.is_alive() and db.one("SELECT count(*) FROM meta WHERE key='gone'") == (0,)
