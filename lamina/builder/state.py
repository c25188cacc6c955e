"""What a build carries from step to step (:class:`State`, the image a stage has built so
far) and the text forms of an instruction: as the classic builder shows it (``_show``) and
as the cache compares it and history records it (``_canonical``).
"""

from __future__ import annotations

import json

from lamina.values import value


@value(frozen=False)
class State:
    """The image a stage has built so far."""

    config: dict                      # the full image config JSON (no rootfs)
    layers: list                      # [(Descriptor, diff_id, content_size)]
    image_id: str                     # config digest of the recorded image ("" for scratch)
    manifest: str                     # manifest digest ("" for scratch)
    cmd_set: bool = False             # CMD set in this stage (ENTRYPOINT then keeps it)

    @property
    def cc(self) -> dict:
        return self.config.setdefault("config", {})


def _show(instr) -> str:
    return " ".join(instr.original.split()) if "\n" in instr.original else instr.original.strip()


def _canonical(instr) -> str:
    """The instruction as the cache compares it (after expansion), in Docker's history form."""
    flags = " ".join(f"--{k}={v}" if v is not None else f"--{k}" for k, v in instr.flags)
    if instr.cmd in ("ENV", "LABEL"):
        a = instr.args
        args = " ".join(f"{a[i]}={_quote_kv(a[i + 1])}" for i in range(0, len(a) - 1, 2))
    elif instr.json:
        args = json.dumps(list(instr.args), separators=(",", ":"), ensure_ascii=False)
    else:
        args = " ".join(instr.args)
    return " ".join(x for x in (instr.cmd, flags, args) if x)


def _quote_kv(v: str) -> str:
    return json.dumps(v, ensure_ascii=False) if (not v or any(c in v for c in " \t\"'\\")) else v
