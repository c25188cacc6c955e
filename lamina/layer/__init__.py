"""Layer tars: writing, one-pass ingest, safe extraction, gzip/zstd.

Modules (import the one you need; nothing heavy is imported here):

- ``compress``: :func:`sniff`, :func:`open_decompressed`, :func:`open_compressor`.
- ``ingest``: :func:`ingest_layer` -> ``LayerInfo`` (diff ID, layer digest, sizes, checks)
  in a single pass over the input.
- ``writer``: :func:`write_layer` directory (or overlay upper dir) -> Docker-style tar.
- ``extract``: :func:`apply_layer` tar -> directory with openat2(RESOLVE_IN_ROOT);
  :func:`check_member`, the entry validation shared with ingest.
- ``tarstream``: the streaming tar reader both ingest and extract use.
"""
