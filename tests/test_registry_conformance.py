"""The OCI distribution-spec v1.1, endpoint by endpoint, against a real ``lamina registry
serve`` on loopback. Written from the spec's text (spec.md: Pull, Push, Content Discovery,
Content Management, the endpoint and error-code tables); the official Go suite is the
yardstick these follow: every blob flow for sha256 and sha512, ranges, out-of-order and
overlapping chunks, bad digests, mounts, manifests of every kind, referrers, tags and
catalog pagination, deletion."""

from __future__ import annotations

import json
import os

import pytest
from registry_server_util import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Registry,
    add_query,
    digest,
    store_files,
)

ALGS = ["sha256", "sha512"]
_n = [0]


def repo(prefix: str = "conf/r") -> str:
    _n[0] += 1
    return f"{prefix}{_n[0]}"


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    r = Registry(str(tmp_path_factory.mktemp("reg") / "store"), "--log-level", "warn")
    yield r
    assert r.stop() == 0


def blob(n: int = 512) -> bytes:
    return os.urandom(n)


def assert_blob(reg, name, data, alg="sha256"):
    dg = digest(data, alg)
    r = reg.request("HEAD", f"/v2/{name}/blobs/{dg}")
    assert r.status == 200, r
    assert r.h("docker-content-digest") == dg
    assert r.h("content-length") == str(len(data))
    assert r.body == b""
    r = reg.request("GET", f"/v2/{name}/blobs/{dg}")
    assert r.status == 200, r
    assert r.body == data
    assert r.h("docker-content-digest") == dg
    assert r.h("content-length") == str(len(data))


def assert_no_blob(reg, name, dg):
    r = reg.request("HEAD", f"/v2/{name}/blobs/{dg}")
    assert r.status == 404, r
    r = reg.request("GET", f"/v2/{name}/blobs/{dg}")
    assert r.status == 404 and r.codes() == ["BLOB_UNKNOWN"], r


# -- determining support ----------------------------------------------------------------------

def test_base_endpoint(reg):
    r = reg.request("GET", "/v2/")
    assert r.status == 200
    assert r.h("docker-distribution-api-version") == "registry/2.0"
    assert r.json() == {}
    r = reg.request("HEAD", "/v2/")
    assert r.status == 200 and r.body == b""


def test_unknown_route_is_404_with_an_envelope(reg):
    for path in ("/v3/", "/v2/a/unknown/thing", "/"):
        r = reg.request("GET", path)
        assert r.status == 404 and r.codes() == ["UNSUPPORTED"], r
    r = reg.request("PATCH", "/v2/")
    assert r.status == 405 and r.codes() == ["UNSUPPORTED"], r


# -- pushing and pulling blobs ----------------------------------------------------------------

@pytest.mark.parametrize("alg", ALGS)
def test_blob_post_then_put(reg, alg):
    name, data = repo(), blob()
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r
    loc = r.h("location")
    assert loc and f"/v2/{name}/blobs/uploads/" in loc
    uid = loc.rstrip("/").rsplit("/", 1)[1]
    assert len(uid) == 36 and r.h("docker-upload-uuid") == uid
    dg = digest(data, alg)
    r = reg.request("PUT", add_query(loc, digest=dg), data, {"Content-Type": "application/octet-stream"})
    assert r.status == 201, r
    assert r.h("location") == f"/v2/{name}/blobs/{dg}"
    assert r.h("docker-content-digest") == dg
    assert_blob(reg, name, data, alg)
    # the session is over
    assert reg.request("GET", loc).status == 404


@pytest.mark.parametrize("alg", ALGS)
def test_blob_single_post(reg, alg):
    name, data = repo(), blob()
    dg = digest(data, alg)
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/?digest={dg}", data,
                    {"Content-Type": "application/octet-stream"})
    assert r.status == 201, r
    assert r.h("location") == f"/v2/{name}/blobs/{dg}"
    assert_blob(reg, name, data, alg)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("put_last", [False, True])
def test_blob_chunked(reg, alg, put_last):
    name, data = repo(), blob(3 * 1000 - 5)
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/", b"", {"Content-Length": "0"})
    assert r.status == 202, r
    loc = r.h("location")
    chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
    off = 0
    for i, c in enumerate(chunks):
        last = i == len(chunks) - 1
        rng = f"{off}-{off + len(c) - 1}"
        hdr = {"Content-Type": "application/octet-stream", "Content-Range": rng}
        if last and put_last:
            r = reg.request("PUT", add_query(loc, digest=digest(data, alg)), c, hdr)
            assert r.status == 201, r
        else:
            r = reg.request("PATCH", loc, c, hdr)
            assert r.status == 202, r
            assert r.h("range") == f"0-{off + len(c) - 1}"
            loc = r.h("location")
            assert loc
        off += len(c)
    if not put_last:
        r = reg.request("PUT", add_query(loc, digest=digest(data, alg)), b"",
                        {"Content-Length": "0"})
        assert r.status == 201, r
    assert r.h("docker-content-digest") == digest(data, alg)
    assert_blob(reg, name, data, alg)


@pytest.mark.parametrize("alg", ALGS)
def test_blob_streamed_patch(reg, alg):
    """PATCH without Content-Range (chunked transfer encoding, as docker sends layers)."""
    name, data = repo(), blob(200_000)
    loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
    c = reg.conn()
    c.putrequest("PATCH", loc)
    c.putheader("Transfer-Encoding", "chunked")
    c.putheader("Content-Type", "application/octet-stream")
    c.endheaders()
    for i in range(0, len(data), 65536):
        part = data[i:i + 65536]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    r.read()
    assert r.status == 202
    assert r.getheader("Range") == f"0-{len(data) - 1}"
    loc = r.getheader("Location")
    c.close()
    r = reg.request("PUT", add_query(loc, digest=digest(data, alg)))
    assert r.status == 201, r
    assert_blob(reg, name, data, alg)


def test_sha512_announced_with_digest_algorithm(reg):
    name, data = repo(), blob(5000)
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/?digest-algorithm=sha512")
    assert r.status == 202, r
    r2 = reg.request("PATCH", r.h("location"), data, {"Content-Range": f"0-{len(data) - 1}"})
    assert r2.status == 202
    r3 = reg.request("PUT", add_query(r2.h("location"), digest=digest(data, "sha512")))
    assert r3.status == 201, r3
    assert_blob(reg, name, data, "sha512")
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/?digest-algorithm=md5")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"]


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("put_last", [False, True])
def test_out_of_order_chunk_is_416_and_upload_recovers(reg, alg, put_last):
    name, data = repo(), blob(3 * 1000 - 5)
    loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
    # skipping ahead before any byte
    r = reg.request("PATCH", loc, data[1000:2000], {"Content-Range": "1000-1999"})
    assert r.status == 416, r
    r = reg.request("PATCH", loc, data[:1000], {"Content-Range": "0-999"})
    assert r.status == 202, r
    loc = r.h("location")
    # skipping ahead, then overlapping, then restarting at 0
    for rng, body in (("2000-2994", data[2000:]), ("500-1499", data[500:1500]), ("0-999", data[:1000])):
        method, url = "PATCH", loc
        if put_last and rng.endswith("2994"):
            method, url = "PUT", add_query(loc, digest=digest(data, alg))
        r = reg.request(method, url, body, {"Content-Range": rng})
        assert r.status == 416, (rng, r)
        s = reg.request("GET", loc)
        assert s.status == 204, s
        assert s.h("range") == "0-999"
        assert s.h("location")
        loc = s.h("location")
    r = reg.request("PATCH", loc, data[1000:2000], {"Content-Range": "1000-1999"})
    assert r.status == 202 and r.h("range") == "0-1999"
    if put_last:
        r = reg.request("PUT", add_query(r.h("location"), digest=digest(data, alg)), data[2000:],
                        {"Content-Range": f"2000-{len(data) - 1}"})
    else:
        r = reg.request("PATCH", r.h("location"), data[2000:], {"Content-Range": f"2000-{len(data) - 1}"})
        assert r.status == 202
        r = reg.request("PUT", add_query(r.h("location"), digest=digest(data, alg)))
    assert r.status == 201, r
    assert_blob(reg, name, data, alg)


def test_chunk_shorter_than_its_content_range_is_rejected_and_forgotten(reg):
    name, data = repo(), blob(2000)
    loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
    r = reg.request("PATCH", loc, data[:500], {"Content-Range": "0-999"})
    assert r.status == 400 and r.codes() == ["BLOB_UPLOAD_INVALID"], r
    assert reg.request("GET", loc).h("range") == "0-0"
    r = reg.request("PATCH", loc, data, {"Content-Range": "0-1999"})
    assert r.status == 202 and r.h("range") == "0-1999"
    assert reg.request("PUT", add_query(r.h("location"), digest=digest(data))).status == 201


def test_upload_status_and_cancel(reg):
    name, data = repo(), blob(700)
    r = reg.request("POST", f"/v2/{name}/blobs/uploads/")
    loc = r.h("location")
    s = reg.request("GET", loc)
    assert s.status == 204 and s.h("range") == "0-0" and s.h("location") == loc
    reg.request("PATCH", loc, data, {"Content-Range": "0-699"})
    s = reg.request("GET", loc)
    assert s.status == 204 and s.h("range") == "0-699"
    r = reg.request("DELETE", loc, b"", {"Content-Length": "0"})
    assert r.status == 204, r
    s = reg.request("GET", loc)
    assert s.status == 404 and s.codes() == ["BLOB_UPLOAD_UNKNOWN"]
    r = reg.request("DELETE", loc)
    assert r.status == 404 and r.codes() == ["BLOB_UPLOAD_UNKNOWN"]
    r = reg.request("PATCH", loc, data)
    assert r.status == 404 and r.codes() == ["BLOB_UPLOAD_UNKNOWN"]
    # an upload of one repository is unknown to another
    loc2 = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
    other = loc2.replace(f"/v2/{name}/", f"/v2/{repo()}/")
    assert reg.request("GET", other).status == 404
    assert reg.request("GET", f"/v2/{name}/blobs/uploads/not-an-upload-id").status == 404


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("flow", ["post", "post+put", "chunked", "chunked+put", "stream"])
def test_bad_digest_is_400_and_nothing_stored(reg, tmp_path, alg, flow):
    name, data = repo(), blob(3000)
    good = digest(data, alg)
    sent = data + b"oh no"
    if flow == "post":
        r = reg.request("POST", f"/v2/{name}/blobs/uploads/?digest={good}", sent)
    else:
        loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
        if flow == "post+put":
            r = reg.request("PUT", add_query(loc, digest=good), sent)
        elif flow == "chunked+put":
            loc = reg.request("PATCH", loc, sent[:1000], {"Content-Range": "0-999"}).h("location")
            r = reg.request("PUT", add_query(loc, digest=good), sent[1000:],
                            {"Content-Range": f"1000-{len(sent) - 1}"})
        else:
            hdr = {"Content-Range": f"0-{len(sent) - 1}"} if flow == "chunked" else {}
            loc = reg.request("PATCH", loc, sent, hdr).h("location")
            r = reg.request("PUT", add_query(loc, digest=good))
    assert r.status == 400, r
    assert r.codes() == ["DIGEST_INVALID"]
    assert_no_blob(reg, name, good)
    bad = digest(sent, alg)
    assert not os.path.exists(os.path.join(reg.root, "blobs", alg, bad[len(alg) + 1:][:2], bad[len(alg) + 1:]))
    assert not os.path.exists(os.path.join(reg.root, "blobs", alg, good[len(alg) + 1:][:2], good[len(alg) + 1:]))


@pytest.mark.parametrize("bad", ["sha256:xyz", "sha256:" + "A" * 64, "sha256:" + "a" * 63,
                                 "md5:d41d8cd98f00b204e9800998ecf8427e", "sha512:" + "a" * 64,
                                 "nocolon", "sha256:" + "a" * 64 + "%0A"])
def test_malformed_digest_is_400(reg, bad):
    name = repo()
    for method, path in (("GET", f"/v2/{name}/blobs/{bad}"), ("DELETE", f"/v2/{name}/blobs/{bad}"),
                         ("POST", f"/v2/{name}/blobs/uploads/?digest={bad}"),
                         ("POST", f"/v2/{name}/blobs/uploads/?mount={bad}&from=x"),
                         ("GET", f"/v2/{name}/referrers/{bad}")):
        r = reg.request(method, path, b"x" if method == "POST" else None)
        assert r.status == 400, (method, path, r)
        assert r.codes() == ["DIGEST_INVALID"], r
    loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
    r = reg.request("PUT", add_query(loc, digest=bad), b"abc")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"], r
    r = reg.request("PUT", loc, b"abc")    # no digest at all
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"], r


def test_get_missing_blob(reg):
    assert_no_blob(reg, repo(), digest(b"never pushed"))


@pytest.mark.parametrize("alg", ALGS)
def test_mount_from_another_repository(reg, alg):
    src, dst, data = repo(), repo(), blob()
    dg = reg.push_blob(src, data, alg)
    assert_no_blob(reg, dst, dg)
    r = reg.request("POST", f"/v2/{dst}/blobs/uploads/?mount={dg}&from={src}")
    assert r.status == 201, r
    assert r.h("location") == f"/v2/{dst}/blobs/{dg}"
    assert r.h("docker-content-digest") == dg
    assert_blob(reg, dst, data, alg)
    # deleting the mount leaves the source alone
    assert reg.request("DELETE", f"/v2/{dst}/blobs/{dg}").status == 202
    assert_no_blob(reg, dst, dg)
    assert_blob(reg, src, data, alg)


@pytest.mark.parametrize("alg", ALGS)
def test_anonymous_mount(reg, alg):
    src, dst, data = repo(), repo(), blob()
    dg = reg.push_blob(src, data, alg)
    r = reg.request("POST", f"/v2/{dst}/blobs/uploads/?mount={dg}")
    assert r.status == 201, r
    assert_blob(reg, dst, data, alg)


def test_mount_of_missing_blob_falls_back_to_an_upload(reg):
    src, dst, data = repo(), repo(), blob()
    dg = digest(data)
    r = reg.request("POST", f"/v2/{dst}/blobs/uploads/?mount={dg}&from={src}")
    assert r.status == 202, r
    r = reg.request("PUT", add_query(r.h("location"), digest=dg), data)
    assert r.status == 201
    assert_blob(reg, dst, data)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("content", [b"", b"{}"])
def test_well_known_blobs(reg, alg, content):
    name = repo()
    dg = reg.push_blob(name, content, alg)
    assert dg == digest(content, alg)
    assert_blob(reg, name, content, alg)
    assert reg.request("DELETE", f"/v2/{name}/blobs/{dg}").status == 202
    assert_no_blob(reg, name, dg)


@pytest.mark.parametrize("alg", ALGS)
def test_range_requests(reg, alg):
    name, data = repo(), blob(2048)
    dg = reg.push_blob(name, data, alg)
    url = f"/v2/{name}/blobs/{dg}"
    for rng, a, b in (("bytes=500-1499", 500, 1499), ("bytes=500-", 500, 2047), ("bytes=-500", 1548, 2047),
                      ("bytes=2000-5000", 2000, 2047), ("bytes=0-0", 0, 0), ("bytes=2047-2047", 2047, 2047)):
        r = reg.request("GET", url, headers={"Range": rng})
        assert r.status == 206, (rng, r)
        assert r.body == data[a:b + 1]
        assert r.h("content-length") == str(b - a + 1)
        assert r.h("content-range") == f"bytes {a}-{b}/2048"
    for rng in ("bytes=500-0", "bytes=5000-10000", "bytes=2048-", "bytes=-0"):
        r = reg.request("GET", url, headers={"Range": rng})
        assert r.status == 416, (rng, r)
        assert r.body == b"" and r.h("content-length") == "0"
        assert r.h("content-range") == "bytes */2048"
    # not a byte range we serve: the whole blob
    for rng in ("items=0-1", "bytes=0-1,5-6"):
        r = reg.request("GET", url, headers={"Range": rng})
        assert r.status == 200 and r.body == data
    r = reg.request("GET", url, headers={"Range": "bytes=0-"})
    assert r.status == 206 and r.body == data


def test_large_blob_is_served_whole(reg):
    """Blobs past the in-loop size are sent with sendfile(2): bytes and ranges intact."""
    name, data = repo(), os.urandom(5 << 20)
    dg = reg.push_blob(name, data)
    r = reg.request("GET", f"/v2/{name}/blobs/{dg}")
    assert r.status == 200 and r.body == data
    r = reg.request("GET", f"/v2/{name}/blobs/{dg}", headers={"Range": "bytes=1000000-4000000"})
    assert r.status == 206 and r.body == data[1000000:4000001]


def test_blob_delete(reg):
    name, data = repo(), blob()
    dg = reg.push_blob(name, data)
    r = reg.request("DELETE", f"/v2/{name}/blobs/{dg}")
    assert r.status == 202, r
    assert_no_blob(reg, name, dg)
    r = reg.request("DELETE", f"/v2/{name}/blobs/{dg}")
    assert r.status == 404 and r.codes() == ["BLOB_UNKNOWN"]


# -- manifests --------------------------------------------------------------------------------

def image_manifest(reg, name, alg="sha256", *, layers=1, media_type=OCI_MANIFEST,
                   config_type=OCI_CONFIG, layer_type=OCI_LAYER, **fields) -> bytes:
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(4).hex(),
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    c = reg.push_blob(name, cfg, alg)
    ls = [blob(300) for _ in range(layers)]
    m = {"schemaVersion": 2, "mediaType": media_type,
         "config": {"mediaType": config_type, "digest": c, "size": len(cfg)},
         "layers": [{"mediaType": layer_type, "digest": reg.push_blob(name, l, alg), "size": len(l)}
                    for l in ls]}
    m.update(fields)
    return json.dumps(m, indent=2).encode()


def assert_manifest(reg, name, ref, data, media_type):
    dg = digest(data, ref.split(":")[0] if ":" in ref else "sha256")
    r = reg.request("GET", f"/v2/{name}/manifests/{ref}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert r.status == 200, r
    assert r.body == data
    assert r.h("content-type") == media_type
    assert r.h("docker-content-digest") == dg
    assert r.h("content-length") == str(len(data))
    r = reg.request("HEAD", f"/v2/{name}/manifests/{ref}")
    assert r.status == 200 and r.body == b""
    assert r.h("content-length") == str(len(data)) and r.h("docker-content-digest") == dg


@pytest.mark.parametrize("alg", ALGS)
def test_manifest_push_pull_by_tag_and_digest(reg, alg):
    name = repo()
    data = image_manifest(reg, name, alg, layers=2)
    dg = digest(data, alg)
    if alg == "sha256":
        r = reg.push_manifest(name, "v1", data)
        assert r.h("location") == f"/v2/{name}/manifests/{dg}"
        assert r.h("docker-content-digest") == dg
        assert_manifest(reg, name, "v1", data, OCI_MANIFEST)
    else:
        r = reg.push_manifest(name, dg, data)
        assert r.h("docker-content-digest") == dg
    assert_manifest(reg, name, dg, data, OCI_MANIFEST)


def test_manifest_exact_bytes(reg):
    name = repo()
    m = json.loads(image_manifest(reg, name))
    data = ("\n\n  " + json.dumps(m, indent=7, sort_keys=True) + "\t\n").encode()
    reg.push_manifest(name, "odd", data)
    assert_manifest(reg, name, "odd", data, OCI_MANIFEST)
    assert_manifest(reg, name, digest(data), data, OCI_MANIFEST)


def test_manifest_digest_mismatch_is_400(reg):
    name = repo()
    data = image_manifest(reg, name)
    wrong = digest(data + b"  ")
    r = reg.request("PUT", f"/v2/{name}/manifests/{wrong}", data, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"], r
    assert reg.request("GET", f"/v2/{name}/manifests/{wrong}").status == 404
    assert reg.request("GET", f"/v2/{name}/manifests/{digest(data)}").status == 404
    r = reg.request("PUT", f"/v2/{name}/manifests/sha256:baddigeststring", data, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"], r
    r = reg.request("GET", f"/v2/{name}/manifests/sha256:baddigeststring")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"], r


def test_manifest_with_unknown_blob_is_rejected(reg):
    name = repo()
    m = json.loads(image_manifest(reg, name))
    missing = digest(b"not pushed")
    m["layers"].append({"mediaType": OCI_LAYER, "digest": missing, "size": 10})
    data = json.dumps(m).encode()
    r = reg.request("PUT", f"/v2/{name}/manifests/t", data, {"Content-Type": OCI_MANIFEST})
    assert r.status == 404 and r.codes() == ["MANIFEST_BLOB_UNKNOWN"], r
    assert reg.request("GET", f"/v2/{name}/manifests/t").status == 404
    assert reg.request("GET", f"/v2/{name}/manifests/{digest(data)}").status == 404
    # a blob of another repository is unknown to this one
    other = repo()
    ob = reg.push_blob(other, b"elsewhere")
    m["layers"][-1] = {"mediaType": OCI_LAYER, "digest": ob, "size": 9}
    r = reg.request("PUT", f"/v2/{name}/manifests/t", json.dumps(m).encode(), {"Content-Type": OCI_MANIFEST})
    assert r.status == 404 and r.codes() == ["MANIFEST_BLOB_UNKNOWN"], r


def test_nondistributable_layers_need_not_be_pushed(reg):
    name = repo()
    m = json.loads(image_manifest(reg, name))
    for mt in ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "application/vnd.oci.image.layer.nondistributable.v1.tar"):
        d = digest(os.urandom(16))
        m["layers"].insert(0, {"mediaType": mt, "digest": d, "size": 123456,
                               "urls": [f"https://store.example.com/blobs/sha256/{d[7:]}"]})
    data = json.dumps(m).encode()
    reg.push_manifest(name, "nd", data)
    assert_manifest(reg, name, "nd", data, OCI_MANIFEST)


def test_index_and_nested_index(reg):
    name = repo()
    kids = []
    for arch in ("amd64", "arm64"):
        d = image_manifest(reg, name)
        reg.push_manifest(name, digest(d), d)
        kids.append({"mediaType": OCI_MANIFEST, "digest": digest(d), "size": len(d),
                     "platform": {"os": "linux", "architecture": arch}})
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": kids}).encode()
    reg.push_manifest(name, "multi", idx, OCI_INDEX)
    assert_manifest(reg, name, "multi", idx, OCI_INDEX)
    outer = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_INDEX, "digest": digest(idx), "size": len(idx)}]}).encode()
    reg.push_manifest(name, "index-of-index", outer, OCI_INDEX)
    assert_manifest(reg, name, "index-of-index", outer, OCI_INDEX)
    empty = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    reg.push_manifest(name, "empty", empty, OCI_INDEX)
    # an index naming a manifest the repository lacks
    bad = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(b"nope"), "size": 4}]}).encode()
    r = reg.request("PUT", f"/v2/{name}/manifests/bad", bad, {"Content-Type": OCI_INDEX})
    assert r.status == 404 and r.codes() == ["MANIFEST_BLOB_UNKNOWN"]


def test_sha512_index(reg):
    name = repo()
    d = image_manifest(reg, name, "sha512")
    reg.push_manifest(name, digest(d, "sha512"), d)
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(d, "sha512"), "size": len(d)}]}).encode()
    reg.push_manifest(name, digest(idx, "sha512"), idx, OCI_INDEX)
    assert_manifest(reg, name, digest(idx, "sha512"), idx, OCI_INDEX)


def test_docker_media_types(reg):
    name = repo()
    d = image_manifest(reg, name, media_type=DOCKER_MANIFEST, config_type=DOCKER_CONFIG,
                       layer_type="application/vnd.docker.image.rootfs.diff.tar.gzip")
    reg.push_manifest(name, "s2", d, DOCKER_MANIFEST)
    assert_manifest(reg, name, "s2", d, DOCKER_MANIFEST)
    lst = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": digest(d), "size": len(d),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    reg.push_manifest(name, "list", lst, DOCKER_LIST)
    assert_manifest(reg, name, "list", lst, DOCKER_LIST)


def test_artifacts_and_custom_fields(reg):
    name = repo()
    reg.push_blob(name, b"{}")
    layer = reg.push_blob(name, b"artifact payload")
    art = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "artifactType": "application/vnd.example.sbom.v1",
                      "config": {"mediaType": OCI_EMPTY, "digest": digest(b"{}"), "size": 2, "data": "e30="},
                      "layers": [{"mediaType": "application/vnd.example.sbom.v1", "digest": layer, "size": 16}],
                      "x-custom": {"anything": [1, 2, 3]}}).encode()
    reg.push_manifest(name, "art", art)
    assert_manifest(reg, name, "art", art, OCI_MANIFEST)
    nolayers = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-t",
                           "config": {"mediaType": OCI_EMPTY, "digest": digest(b"{}"), "size": 2},
                           "layers": []}).encode()
    reg.push_manifest(name, "nolayers", nolayers)


def test_manifest_content_type(reg):
    name = repo()
    data = image_manifest(reg, name)
    r = reg.request("PUT", f"/v2/{name}/manifests/t", data, {"Content-Type": OCI_INDEX})
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"], r
    r = reg.request("PUT", f"/v2/{name}/manifests/t", data,
                    {"Content-Type": OCI_MANIFEST + "; charset=utf-8"})
    assert r.status == 201, r
    r = reg.request("PUT", f"/v2/{name}/manifests/t", b"not json", {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"], r
    r = reg.request("PUT", f"/v2/{name}/manifests/t", b'{"schemaVersion": 1}', {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"], r
    r = reg.request("PUT", f"/v2/{name}/manifests/t", b'[]', {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"], r


def test_manifest_size_limit(reg):
    name = repo()
    m = json.loads(image_manifest(reg, name))
    # the conformance suite's large manifest (390 annotations of 10,000 bytes) fits
    m["annotations"] = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    data = json.dumps(m).encode()
    reg.push_manifest(name, "large", data)
    assert_manifest(reg, name, "large", data, OCI_MANIFEST)
    m["annotations"]["more"] = "B" * (300 << 10)
    big = json.dumps(m).encode()
    assert len(big) > 4 << 20
    r = reg.request("PUT", f"/v2/{name}/manifests/big", big, {"Content-Type": OCI_MANIFEST})
    assert r.status == 413 and r.codes() == ["MANIFEST_INVALID"], r
    # chunked, without a Content-Length to refuse early
    c = reg.conn()
    c.putrequest("PUT", f"/v2/{name}/manifests/big")
    c.putheader("Transfer-Encoding", "chunked")
    c.putheader("Content-Type", OCI_MANIFEST)
    c.endheaders()
    for i in range(0, len(big), 1 << 20):
        part = big[i:i + (1 << 20)]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    resp = c.getresponse()
    assert resp.status == 413
    resp.read()
    c.close()
    assert reg.request("GET", f"/v2/{name}/manifests/big").status == 404


def test_missing_manifests(reg):
    name = repo()
    reg.push_image(name, "exists")
    r = reg.request("GET", f"/v2/{name}/manifests/{digest(os.urandom(64))}")
    assert r.status == 404 and r.codes() == ["MANIFEST_UNKNOWN"], r
    r = reg.request("GET", f"/v2/{name}/manifests/missing-tag")
    assert r.status == 404 and r.codes() == ["MANIFEST_UNKNOWN"], r
    assert reg.request("HEAD", f"/v2/{name}/manifests/missing-tag").status == 404
    assert reg.request("GET", f"/v2/{repo()}/manifests/latest").status == 404


@pytest.mark.parametrize("bad", ["UPPER/case", "a//b", "a/../b", "_x", "a/_manifests", "a-", "-a",
                                 "a..b", "a___b", "x" * 256])
def test_invalid_names_are_400(reg, bad):
    for method, path in (("GET", f"/v2/{bad}/manifests/latest"), ("GET", f"/v2/{bad}/tags/list"),
                         ("POST", f"/v2/{bad}/blobs/uploads/"), ("GET", f"/v2/{bad}/blobs/{digest(b'')}")):
        r = reg.request(method, path)
        assert r.status == 400 and r.codes() == ["NAME_INVALID"], (method, path, r)


def test_name_components_cannot_leave_the_store(reg):
    for path in ("/v2/../../etc/manifests/passwd", "/v2/%2e%2e/manifests/x", "/v2/a/%2F/manifests/x"):
        r = reg.request("GET", path)
        assert r.status in (400, 404), (path, r)
    assert sorted(os.listdir(reg.root)) == sorted(
        ["blobs", "repositories", "uploads", "tmp", "lamina-registry", "gc.lock"])


@pytest.mark.parametrize("bad", ["-lead", ".lead", "a" * 129, "a:b"])
def test_invalid_tags_are_400(reg, bad):
    name = repo()
    data = image_manifest(reg, name)
    r = reg.request("PUT", f"/v2/{name}/manifests/{bad}", data, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400, r
    assert r.codes()[0] in ("TAG_INVALID", "DIGEST_INVALID")


def test_push_by_digest_with_tag_parameters(reg):
    name = repo()
    data = image_manifest(reg, name)
    dg = digest(data)
    r = reg.request("PUT", f"/v2/{name}/manifests/{dg}?tag=1.2.3&tag=1.2&tag=latest", data,
                    {"Content-Type": OCI_MANIFEST})
    assert r.status == 201, r
    assert [t.strip() for t in r.h("oci-tag").split(",")] == ["1.2.3", "1.2", "latest"]
    assert reg.request("GET", f"/v2/{name}/tags/list").json()["tags"] == ["1.2", "1.2.3", "latest"]


# -- content discovery ------------------------------------------------------------------------

def test_tags_list_and_pagination(reg):
    name = repo()
    dg, data, _ = reg.push_image(name, "first")
    tags = ["b", "A", "a", "_x", "1.0", "Z-9", "latest", "v10", "v2", "first"]
    for t in tags:
        reg.push_manifest(name, t, data)
    want = sorted(tags)
    r = reg.request("GET", f"/v2/{name}/tags/list")
    assert r.status == 200
    assert r.json() == {"name": name, "tags": want}
    got, url = [], f"/v2/{name}/tags/list?n=3"
    while url:
        r = reg.request("GET", url)
        assert r.status == 200
        page = r.json()["tags"]
        assert len(page) <= 3
        got += page
        link = r.h("link")
        if link:
            assert link.endswith('; rel="next"')
            url = link[1:link.index(">")]
        else:
            url = None
    assert got == want
    r = reg.request("GET", f"/v2/{name}/tags/list?n=0")
    assert r.json()["tags"] == [] and r.h("link") is None
    r = reg.request("GET", f"/v2/{name}/tags/list?last=b")
    assert r.json()["tags"] == [t for t in want if t > "b"]
    r = reg.request("GET", f"/v2/{name}/tags/list?n=2&last=a")
    assert r.json()["tags"] == [t for t in want if t > "a"][:2]
    r = reg.request("GET", f"/v2/{name}/tags/list?n=100")
    assert r.json()["tags"] == want and r.h("link") is None
    r = reg.request("GET", f"/v2/{name}/tags/list?n=-1")
    assert r.status == 400 and r.codes() == ["PAGINATION_NUMBER_INVALID"]
    r = reg.request("GET", f"/v2/{repo()}/tags/list")
    assert r.status == 404 and r.codes() == ["NAME_UNKNOWN"]


def test_catalog(reg, tmp_path):
    r2 = Registry(str(tmp_path / "cat"), "--log-level", "warn")
    try:
        names = ["b/x", "a", "a/b", "a-c", "z/y/x", "m"]
        for n in names:
            r2.push_blob(n, b"x")
        assert r2.request("GET", "/v2/_catalog").json() == {"repositories": sorted(names)}
        got, url = [], "/v2/_catalog?n=2"
        while url:
            r = r2.request("GET", url)
            got += r.json()["repositories"]
            link = r.h("link")
            url = link[1:link.index(">")] if link else None
        assert got == sorted(names)
        assert r2.request("GET", "/v2/_catalog?n=0").json() == {"repositories": []}
    finally:
        r2.stop()


def test_referrers(reg):
    name = repo()
    sdg, sdata, _ = reg.push_image(name, "image")
    subject = {"mediaType": OCI_MANIFEST, "digest": sdg, "size": len(sdata)}
    r = reg.request("GET", f"/v2/{name}/referrers/{sdg}")
    assert r.status == 200 and r.h("content-type") == OCI_INDEX
    assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    reg.push_blob(name, b"{}")
    refs = {}
    for i, at in enumerate(["application/vnd.example.sbom.v1", "application/vnd.example.sig.v1", None]):
        layer = reg.push_blob(name, f"payload {i}".encode())
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_EMPTY if at else "application/vnd.example.config.v1+json",
                        "digest": digest(b"{}"), "size": 2},
             "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": len(f"payload {i}")}],
             "subject": subject, "annotations": {"org.opencontainers.conformance": f"hello {i}"}}
        if at:
            m["artifactType"] = at
        data = json.dumps(m).encode()
        r = reg.push_manifest(name, digest(data), data)
        assert r.h("oci-subject") == sdg
        refs[digest(data)] = (data, at or "application/vnd.example.config.v1+json")
    # an index with a subject (no artifactType: omitted in the listing)
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "subject": subject}).encode()
    r = reg.push_manifest(name, digest(idx), idx, OCI_INDEX)
    assert r.h("oci-subject") == sdg
    r = reg.request("GET", f"/v2/{name}/referrers/{sdg}")
    assert r.status == 200
    doc = r.json()
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == OCI_INDEX
    by = {d["digest"]: d for d in doc["manifests"]}
    assert set(by) == set(refs) | {digest(idx)}
    for dg, (data, at) in refs.items():
        assert by[dg]["mediaType"] == OCI_MANIFEST and by[dg]["size"] == len(data)
        assert by[dg]["artifactType"] == at
        assert by[dg]["annotations"]["org.opencontainers.conformance"].startswith("hello")
    assert "artifactType" not in by[digest(idx)] and by[digest(idx)]["mediaType"] == OCI_INDEX
    r = reg.request("GET", f"/v2/{name}/referrers/{sdg}?artifactType=application/vnd.example.sbom.v1")
    assert r.h("oci-filters-applied") == "artifactType"
    assert [d["artifactType"] for d in r.json()["manifests"]] == ["application/vnd.example.sbom.v1"]
    r = reg.request("GET", f"/v2/{name}/referrers/{sdg}?artifactType=application/none")
    assert r.status == 200 and r.json()["manifests"] == []
    # deleting a referrer removes it from the list
    gone = next(iter(refs))
    assert reg.request("DELETE", f"/v2/{name}/manifests/{gone}").status == 202
    left = {d["digest"] for d in reg.request("GET", f"/v2/{name}/referrers/{sdg}").json()["manifests"]}
    assert gone not in left and len(left) == len(refs)


def test_referrers_of_unknown_subject_and_repository(reg):
    dg = digest(os.urandom(10))
    for name in (repo(), "never/pushed/repo"):
        r = reg.request("GET", f"/v2/{name}/referrers/{dg}")
        assert r.status == 200, r
        assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_subject_pushed_after_its_referrer(reg):
    name = repo()
    missing = {"mediaType": OCI_MANIFEST, "digest": digest(b"missing content"), "size": 123}
    reg.push_blob(name, b"{}")
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-a",
                    "config": {"mediaType": OCI_EMPTY, "digest": digest(b"{}"), "size": 2},
                    "layers": [], "subject": missing}).encode()
    r = reg.push_manifest(name, "tagged-artifact", m)
    assert r.h("oci-subject") == missing["digest"]
    got = reg.request("GET", f"/v2/{name}/referrers/{missing['digest']}").json()["manifests"]
    assert [d["digest"] for d in got] == [digest(m)]


# -- content management -----------------------------------------------------------------------

def test_delete_tag_and_manifest(reg):
    name = repo()
    dg, data, blobs = reg.push_image(name, "one")
    reg.push_manifest(name, "two", data)
    r = reg.request("DELETE", f"/v2/{name}/manifests/one")
    assert r.status == 202, r
    assert reg.request("HEAD", f"/v2/{name}/manifests/one").status == 404
    assert reg.request("GET", f"/v2/{name}/manifests/two").status == 200
    assert reg.request("GET", f"/v2/{name}/manifests/{dg}").status == 200
    assert reg.request("DELETE", f"/v2/{name}/manifests/one").status == 404
    r = reg.request("DELETE", f"/v2/{name}/manifests/{dg}")
    assert r.status == 202, r
    assert reg.request("HEAD", f"/v2/{name}/manifests/{dg}").status == 404
    assert reg.request("GET", f"/v2/{name}/manifests/two").status == 404   # the tag went with it
    assert reg.request("GET", f"/v2/{name}/tags/list").json()["tags"] == []
    r = reg.request("DELETE", f"/v2/{name}/manifests/{dg}")
    assert r.status == 404 and r.codes() == ["MANIFEST_UNKNOWN"]
    for b in blobs:
        assert reg.request("DELETE", f"/v2/{name}/blobs/{b}").status == 202


def test_store_layout(reg):
    """The documented store format: blobs by digest, a repository of links."""
    name = repo()
    dg, data, blobs = reg.push_image(name, "t")
    hexd = dg[7:]
    assert open(os.path.join(reg.root, "blobs", "sha256", hexd[:2], hexd), "rb").read() == data
    rdir = os.path.join(reg.root, "repositories", name)
    assert open(os.path.join(rdir, "_tags", "t")).read().strip() == dg
    assert open(os.path.join(rdir, "_manifests", "sha256", hexd)).read().strip() == OCI_MANIFEST
    assert store_files(rdir, "_blobs") == sorted(f"sha256/{b[7:]}" for b in blobs)
    assert open(os.path.join(reg.root, "lamina-registry")).read() == "lamina-registry 1\n"


@pytest.fixture(scope="module")
def ro_reg(tmp_path_factory, reg):
    root = str(tmp_path_factory.mktemp("ro") / "store")
    w = Registry(root, "--log-level", "warn")
    dg, _, blobs = w.push_image("ro/app", "v1")
    w.stop()
    r = Registry(root, "--read-only", "--log-level", "warn")
    yield r, dg, blobs
    r.stop()


def test_read_only(ro_reg):
    reg, dg, blobs = ro_reg
    assert reg.request("GET", "/v2/ro/app/manifests/v1").status == 200
    for method, path in (("POST", "/v2/ro/app/blobs/uploads/"), ("PUT", "/v2/ro/app/manifests/v2"),
                         ("DELETE", f"/v2/ro/app/manifests/{dg}"), ("DELETE", f"/v2/ro/app/blobs/{blobs[0]}")):
        r = reg.request(method, path, b"{}")
        assert r.status == 405 and r.codes() == ["UNSUPPORTED"], (method, r)
    assert reg.request("GET", "/v2/ro/app/manifests/v1").status == 200


def test_no_delete(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--no-delete", "--log-level", "warn")
    try:
        dg, _, blobs = reg.push_image("nd/app", "v1")
        for path in ("/v2/nd/app/manifests/v1", f"/v2/nd/app/manifests/{dg}", f"/v2/nd/app/blobs/{blobs[0]}"):
            r = reg.request("DELETE", path)
            assert r.status == 405 and r.codes() == ["UNSUPPORTED"], r
        assert reg.request("GET", "/v2/nd/app/manifests/v1").status == 200
    finally:
        reg.stop()


def test_max_manifest_size_flag(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--max-manifest-size", "1KiB", "--log-level", "warn")
    try:
        data = image_manifest(reg, "small/app")
        m = json.loads(data)
        m["annotations"] = {"pad": "x" * 1100}
        r = reg.request("PUT", "/v2/small/app/manifests/t", json.dumps(m).encode(), {"Content-Type": OCI_MANIFEST})
        assert r.status == 413, r
        reg.push_manifest("small/app", "ok", json.dumps(json.loads(data)).encode())
    finally:
        reg.stop()


def test_referrers_pages_with_link(reg):
    """More referrers than one response holds (1000): the rest follow the Link header."""
    name = repo()
    sdg, sdata, _ = reg.push_image(name, "image")
    reg.push_blob(name, b"{}")
    subject = {"mediaType": OCI_MANIFEST, "digest": sdg, "size": len(sdata)}
    want = set()
    c = reg.conn()
    for i in range(1005):
        m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "artifactType": "application/x-even" if i % 2 == 0 else "application/x-odd",
                        "config": {"mediaType": OCI_EMPTY, "digest": digest(b"{}"), "size": 2},
                        "layers": [], "subject": subject, "annotations": {"i": str(i)}}).encode()
        r = reg.request("PUT", f"/v2/{name}/manifests/{digest(m)}", m, {"Content-Type": OCI_MANIFEST}, conn=c)
        assert r.status == 201
        want.add(digest(m))
    c.close()
    for at, _expect in ((None, want), ("application/x-odd", None)):
        got, url, pages = [], f"/v2/{name}/referrers/{sdg}" + (f"?artifactType={at}" if at else ""), 0
        while url:
            r = reg.request("GET", url)
            assert r.status == 200
            got += r.json()["manifests"]
            pages += 1
            link = r.h("link")
            url = link[1:link.index(">")] if link else None
        if at is None:
            assert pages == 2 and len(got) == 1005
            assert {d["digest"] for d in got} == want
        else:
            assert len(got) == 502 and all(d["artifactType"] == at for d in got)
        assert len({d["digest"] for d in got}) == len(got)
