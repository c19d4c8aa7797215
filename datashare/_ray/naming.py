"""Names of datashare's detached actors in Ray, and what a holder name says about its node."""

from __future__ import annotations

NAMESPACE = "yuanrong-datashare"
"""Ray namespace of datashare's detached actors."""

CATALOGUE_NAME = "catalogue"
HOLDER_PREFIX = "holder-"
JOB_PREFIX = "job-"   # marks chunks owned by the publishing process (lifetime="job"), not a holder


def holder_name(node_id: str) -> str:
    """Name of the holder actor of ``node_id``."""
    return HOLDER_PREFIX + node_id


def node_of(owner: str) -> str:
    """Node id in a holder name (``holder-<id>``) or a job owner mark (``job-<id>``)."""
    return owner.split("-", 1)[1]
