"""``NODE_ID``, ``INIT_LABELS`` and ``INSTANCE_ID``: the environment openYuanrong gives every instance process.

openYuanrong's runtime tells user code where it runs through environment variables: the id of its
node, the node's labels and the id of the instance the process serves. On Ray these are known only
once the process runs, so they are set from Ray's runtime context inside the process.
``INSTANCE_ID`` is the instance's id (Ray's actor id, as ``inst.instance_id`` shows) in instances
and function instances, and the worker process's id where a call runs as a plain Ray task.
"""

from __future__ import annotations

import json
import os

import ray

NODE_ID = "NODE_ID"
INIT_LABELS = "INIT_LABELS"
INSTANCE_ID = "INSTANCE_ID"
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
    export_instance_id()
    _exported = True


def export_instance_id() -> None:
    """Set ``INSTANCE_ID``: the running actor's id, else this worker process's id."""
    if not ray.is_initialized():
        return
    ctx = ray.get_runtime_context()
    os.environ[INSTANCE_ID] = ctx.get_actor_id() or ctx.get_worker_id()


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
