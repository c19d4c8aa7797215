"""``Config.placement_telemetry``: the session's live RTT and load probe, which its placer decides on.

``yr.init`` starts one :class:`placement.ray_probe.TelemetryProbe` over every client region and
pool the cluster's live nodes carry (and every node's load); the session's placer attaches its
:class:`placement.telemetry.Telemetry` to every snapshot; ``yr.finalize`` closes it (its thread and
actors). Regions, pools and nodes are those live when ``init`` ran: a node that joins later is
placed on the pools file's figures (and its load as Ray books it).
"""

from __future__ import annotations

import ray

from placement.ray_probe import TelemetryProbe
from placement.telemetry import Telemetry
from yuanrong.exception import YRError


def start(period_s: float, max_age_s: float) -> TelemetryProbe:
    """Probe once now (so the first placement has figures), then every ``period_s`` in the background.

    Raises:
        YRError: The probe's actors did not start or answer (a node left, or the cluster is full of
            pending actors); nothing of the probe is left running.
    """
    try:
        probe = TelemetryProbe(Telemetry(max_age_s=max_age_s), pings=3, warmup=1)
    except ray.exceptions.RayError as e:
        raise _not_started(e) from e
    try:
        return probe.probe().start(period_s)
    except ray.exceptions.RayError as e:
        probe.close()
        raise _not_started(e) from e
    except BaseException:
        probe.close()
        raise


def _not_started(e: Exception) -> YRError:
    return YRError(f"Config.placement_telemetry: the probe could not measure the cluster ({type(e).__name__}: "
                   f"{e}); check that every node is alive (`yr status`), or leave placement_telemetry off.")
