"""``NODE_ID`` and ``INIT_LABELS``: the environment openYuanrong gives every instance process.

openYuanrong's runtime tells user code where it runs through two environment variables: the id of
its node and the node's labels. On Ray the node is known only once the process runs, so the
variables are set from Ray's runtime context inside the process, once.
"""

from __future__ import annotations

import json
import os

import ray

NODE_ID = "NODE_ID"
INIT_LABELS = "INIT_LABELS"
_exported = False
# Class attribute that makes an instance's process import yuanrong (see carry()).
CARRIER = "__yr_node_env__"


def export() -> None:
    """Set ``NODE_ID`` (Ray's node id, hex) and ``INIT_LABELS`` (the node's labels as a JSON object).

    A no-op outside a connected Ray process; safe to call more than once.
    """
    global _exported
    if _exported or not ray.is_initialized():
        return
    ctx = ray.get_runtime_context()
    os.environ[INIT_LABELS] = json.dumps(dict(ctx.get_node_labels()), sort_keys=True)
    os.environ[NODE_ID] = ctx.get_node_id()
    _exported = True


def carry(cls: type) -> None:
    """Make the process of every instance of ``cls`` set ``NODE_ID`` and ``INIT_LABELS``.

    They are set when yuanrong is imported in a Ray worker. A class defined in a program's
    ``__main__`` whose methods never name ``yr`` reaches its worker without that import, so the
    class carries a reference to :func:`export`: unpickling it imports yuanrong, before the
    constructor runs. A class that refuses new attributes is left as it is.
    """
    if CARRIER in vars(cls):
        return
    try:
        setattr(cls, CARRIER, staticmethod(export))
    except (AttributeError, TypeError):
        pass
