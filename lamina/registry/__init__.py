"""The OCI distribution protocol: what the registry client and server share.

``errcodes`` is the one table of wire error codes (code, message, HTTP status) used by both
sides; ``client/`` pulls and pushes, ``server/`` serves. Importing this package imports nothing.
"""
