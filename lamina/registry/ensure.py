"""Docker's ``--pull`` policies for ``run``, ``create`` and ``build``: the local image, pulled
from its registry when it is missing (``missing``, the default), before every use
(``always``), or never.

Importing this module is cheap and a local image is found without loading the registry
client: the HTTP stack is imported only when a pull happens.
"""

from __future__ import annotations

POLICIES = ("always", "missing", "never")


def check_policy(policy: str) -> str:
    from lamina.errors import InvalidArgument
    if policy not in POLICIES:
        raise InvalidArgument(f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\"")
    return policy


def ensure_image(store, name: str, *, policy: str = "missing", out=None, quiet: bool = False, announce=None):
    """The image record for ``name``, pulled first as ``policy`` says.

    ``announce`` (a text stream) gets Docker's ``Unable to find image '<name>' locally``
    before a pull of a missing image; ``out`` gets the pull's output (Docker's lines, bars
    when it is a terminal), nothing when ``quiet`` or None. Image IDs and digests of images not held are never pulled by
    ID (NotFound). Raises NotFound with ``policy="never"`` when the image is missing.
    """
    from lamina.errors import InvalidArgument, NotFound
    from lamina.image.service import Images
    check_policy(policy)
    images = Images(store)
    if policy != "always":
        try:
            return images.resolve(name)
        except NotFound:
            if policy == "never":
                raise
    from lamina import reference
    try:
        ref = reference.parse(name)
    except InvalidArgument:
        raise NotFound(f"No such image: {name}") from None
    if policy == "missing" and announce is not None:
        announce.write(f"Unable to find image '{ref.familiar}' locally\n")
        announce.flush()
    from lamina.progress import Progress
    from lamina.registry.client.pull import pull_reporting
    pull_reporting(store, str(ref), progress=Progress(out, quiet=quiet or out is None))
    return images.resolve(str(ref))
