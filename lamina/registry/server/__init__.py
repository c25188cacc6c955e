"""lamina's OCI registry: ``lamina registry serve``, a drop-in for registry:2.

Modules, one side effect each::

    names     the spec's grammar for names, tags, digests, upload ids (pure)
    manifests what a pushed manifest references; its referrers descriptor (pure)
    storage   the store on disk (the only module that lays out paths)
    uploads   blob upload sessions: append, resume, verify, commit
    http      HTTP/1.1 on httptools + uvloop; zero-copy sendfile for blobs
    app       the distribution API: routes and handlers
    auth      htpasswd (bcrypt) Basic, the built-in Bearer token issuer, ACL
    metrics   Prometheus counters shared by worker processes
    gc        mark and sweep, safe while serving
    importer  import of a registry:2 storage directory
    serve     sockets, workers, signals, readiness line, access log

Starting one (tests, the registry client's tests, scripts)::

    python -m lamina registry serve --addr 127.0.0.1:0 --root DIR
        -> prints "lamina registry listening on http://127.0.0.1:<port>" once it accepts
           connections; SIGTERM stops it after the requests in flight.

    from lamina.registry.server.serve import start_in_thread
    reg = start_in_thread(root=DIR)      # reg.url, reg.stop(); options as Config's

Store format, version 1 (``<root>/lamina-registry`` holds ``lamina-registry 1``)::

    <root>/
      lamina-registry                    format marker
      blobs/<alg>/<hex[:2]>/<hex>        every blob and manifest, by digest (sha256, sha512);
                                         immutable, shared by all repositories
      repositories/<name>/               one directory per repository; <name>'s components
                                         are path components (never '.', '..', '_*')
        _blobs/<alg>/<hex>               empty file: the repository holds this blob
                                         (a push, a cross-repository mount)
        _manifests/<alg>/<hex>           the repository holds this manifest; the file holds
                                         the media type it was pushed with
        _tags/<tag>                      the tag's manifest digest ("sha256:...\\n")
        _referrers/<alg>-<hex>/<alg>-<hex>
                                         subject -> referrer: the descriptor JSON that the
                                         referrers API lists for that manifest
      uploads/<uuid>/info                upload session: JSON {repository, started, algorithm}
      uploads/<uuid>/data                the bytes received so far (size = offset)
      tmp/                               temporary files of atomic writes
      gc.lock                            flock: manifest pushes shared, GC's sweep exclusive
      _auth/token.key                    HMAC key of the token issuer (0600; --auth token)

Everything visible is written by rename (a blob only after its digest was verified), so a
process killed at any moment leaves a store that serves every acknowledged push and at
worst a stray temporary file or upload session, which GC removes. All state is on disk:
worker processes and instances behind a load balancer share one root.
"""
