"""lamina.runtime.record owns the shape of container records: real containers created and
run through the CLI carry exactly the fields it declares, with its defaults."""

from __future__ import annotations

import json

import pytest

from lamina.runtime import record
from lamina.runtime.containers import Containers
from lamina.store import Store


def inspect(bb, name: str) -> dict:
    return json.loads(bb("inspect", name).out)[0]


def test_a_created_container_is_the_record_modules_document(bb):
    bb("create", "--name", "c1", "busybox", "true")
    doc = inspect(bb, "c1")
    want = record.new_document(
        cid=doc["Id"], name="c1", created=doc["Created"], path="true", args=[], image=doc["Image"],
        manifest=doc["ImageManifest"], directory="/d", host_config={}, config={}, mounts=[],
        networks={}, chain_id=None, detach_keys=None, cgroup_parent="lamina")
    assert list(doc) == list(record.inspect_view(want))  # every top-level field, in inspect order
    assert set(record.DOCKER_TOP) <= set(doc)
    assert doc["State"] == record.DOCKER_STATE  # a created container: Docker's defaults only
    assert list(doc["NetworkSettings"]) == list(record.network_settings({}))
    assert record.State.of(doc) == record.State()


def test_a_run_leaves_only_declared_state_fields(bb):
    bb("run", "--name", "r1", "busybox", "sh", "-c", "exit 3", check=False)
    doc = inspect(bb, "r1")
    assert set(doc["State"]) <= set(record.STATE_DEFAULTS), set(doc["State"]) - set(record.STATE_DEFAULTS)
    st = record.State.of(doc)
    assert (st.status, st.exit_code, st.running, st.active) == ("exited", 3, False, False)
    assert st.started_at != record.ZERO_TIME and st.finished_at != record.ZERO_TIME


def test_state_writes_must_name_declared_fields(bb):
    bb("create", "--name", "c2", "busybox", "true")
    store = Store(bb.root)
    try:
        cs = Containers(store)
        cid = cs.get("c2")["Id"]
        with pytest.raises(ValueError, match="Helth"):
            cs.set_state(cid, Helth="starting")
        assert "Helth" not in cs.get("c2")["State"]  # nothing written
        cs.set_state(cid, StoppedByUser=True)
        assert record.State.of(cs.get("c2")).stopped_by_user
    finally:
        store.close_db()
