"""The registry client: pull, push, login, logout, search against any OCI / Docker registry.

Modules, from the wire up (import the one you need; this package imports nothing):

- ``hosts``: where a registry lives and how to reach it (docker.io's API host, which
  registries may use plain HTTP, per-registry CA and client certificates from
  ``/etc/docker/certs.d/<host[:port]>/`` and lamina's ``/etc/lamina/certs.d``). No I/O
  beyond reading those files.
- ``credentials``: Docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``
  through ``docker-credential-*``), so one ``login`` serves lamina and docker alike.
- ``transport``: HTTP on urllib3 (keep-alive pools, TLS, retries with backoff, redirects
  that never carry credentials to another host). The only module importing urllib3.
- ``auth``: ``WWW-Authenticate`` challenges: anonymous, Basic, Bearer tokens per scope,
  reused until they expire.
- ``api``: the distribution API of one registry (manifests, blobs, uploads, mounts,
  catalog, tags, the Hub's search), with wire errors classed by ``lamina.registry.errcodes``.
- ``progress``: Docker's pull/push output (bars on a terminal, plain lines otherwise).
- ``pull`` / ``push``: the operations, writing to and reading from a ``lamina.store.Store``.

None of this is imported by ``--help``, ``ps``, ``images``, ``run`` of a local image or a
fully cached build: the CLI imports it inside the verbs that talk to a registry.
"""
