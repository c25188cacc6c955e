"""Containers: records, the OCI runtime spec, the built-in runtime and runc/crun, the monitor.

Importing this package imports none of its modules (``run`` and ``ps`` load only what they
use); docs/design-notes.md draws the map.
"""
