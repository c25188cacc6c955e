"""Container diffs and copies: ``docker diff``, ``docker cp``, ``docker export``.

Modules (import the one you need; nothing heavy is imported here):

- ``changes``: :func:`changes` overlay upper dir + image layer dirs -> ``docker diff``
  list (:class:`Change`), :func:`format_changes`.
- ``copy``: :func:`copy_in` / :func:`copy_out` (``docker cp`` both ways, every container
  path resolved with openat2 RESOLVE_IN_ROOT), :func:`copy_in_tar` / :func:`copy_out_tar`
  (the ``-`` forms), :func:`export_tar` (``docker export``).
"""
