"""The feature service: the ETL's published table, opened zero-copy, served over HTTP and gRPC.

Each replica opens the named dataset with ``datashare.open`` when it starts (so a missing dataset
fails the deployment at once) and again for every lookup: an open the process's read cache can
answer returns the mapped table in microseconds, and after the ETL publishes a new version it
returns that one, so a replica never serves features older than the latest publish by more than
the catalogue's notification delay. The table's buffers stay in the node's shared-memory object
store and lookups scan the ``user_id`` column in place; in a traced job each lookup's span shows
the ``datashare.open`` it made, with the version and the node it read on. How often
each user was looked up is per-user state kept in one yuanrong instance (:class:`UserState`),
shared by every replica, so a replica restart or a second replica sees the same counts.

HTTP (under the route prefix, ``/features`` by default):
    ``GET /features/users/{user_id}``  the user's features and lookup count (404 unknown user,
    400 when the id is not an integer); ``GET /features/stats``  rows, pool and whether every
    column buffer lies in the shared-memory store.

gRPC (``features.proto``, through Serve's gRPC proxy with metadata ``application=features``):
    ``FeatureService.GetFeatures(UserRequest) -> Features``; ``NOT_FOUND`` for an unknown user.
    ``FeatureService.StreamFeatures(UsersRequest) -> stream Features``: each known user's features
    in the order asked, sent as each lookup finishes.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import datashare
import yuanrong as yr
from apps.etl.pipeline import DATASET
from apps.features import grpc_api
from yuanrong.endpoint import endpoint, run

APP = "features"
ROUTE = "/features"


@yr.instance
class UserState:
    """Per-user lookup counts, shared by every replica of the service."""

    def __init__(self) -> None:
        self.lookups: dict[int, int] = {}

    def bump(self, user_id: int) -> int:
        self.lookups[user_id] = self.lookups.get(user_id, 0) + 1
        return self.lookups[user_id]

    def count(self, user_id: int) -> int:
        return self.lookups.get(user_id, 0)


class FeatureService:
    """One replica: the feature table opened zero-copy, plus a handle to the shared per-user state."""

    def __init__(self, state: Any, dataset: str = DATASET) -> None:
        import ray

        datashare.open(dataset)  # a missing dataset fails the deployment here, not the first request
        self._dataset = dataset
        self._state = state
        self._pool = ray.get_runtime_context().get_node_labels().get("yr.io/pool", "?")

    def _current(self) -> pa.Table:
        """The newest published version (from the read cache unless a new one was published)."""
        return datashare.open(self._dataset)

    def _row(self, user_id: int) -> dict[str, Any] | None:
        table = self._current()
        index = pc.index(table["user_id"], pa.scalar(user_id, pa.int64())).as_py()
        if index < 0:
            return None
        return table.slice(index, 1).to_pylist()[0]

    async def lookup(self, user_id: int) -> dict[str, Any] | None:
        row = self._row(user_id)
        if row is None:
            return None
        row["lookups"] = await self._state.bump.invoke(user_id)
        row["served_from_pool"] = self._pool
        return row

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        parts = [p for p in request.url.path.split("/") if p]
        if parts[-1:] == ["stats"]:
            table = self._current()
            inside, total = datashare.buffers_in_store(table)
            return {"dataset": self._dataset, "rows": table.num_rows, "pool": self._pool,
                    "buffers_in_store": inside, "buffers": total}
        if len(parts) >= 2 and parts[-2] == "users":
            try:
                user_id = int(parts[-1])
            except ValueError:
                return JSONResponse({"error": {"type": "BadRequest", "message": f"user id {parts[-1]!r} is not "
                                                                                f"an integer; use /users/42."}},
                                    status_code=400)
            row = await self.lookup(user_id)
            if row is None:
                return JSONResponse({"error": {"type": "UserNotFound", "message": f"user {user_id} has no "
                                                                                  f"features in {self._dataset!r}."}},
                                    status_code=404)
            return row
        return JSONResponse({"error": {"type": "NotFound", "message": f"no route {request.url.path!r}; use "
                                                                      f"/users/{{id}} or /stats."}}, status_code=404)

    async def GetFeatures(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 - the rpc's name
        import grpc

        row = await self.lookup(int(request.user_id))
        if row is None:
            if grpc_context is not None:
                grpc_context.set_code(grpc.StatusCode.NOT_FOUND)
                grpc_context.set_details(f"user {request.user_id} has no features in {self._dataset!r}")
            return grpc_api.Features()
        return grpc_api.Features(**row)

    async def StreamFeatures(self, request: Any) -> Any:  # noqa: N802 - the rpc's name
        for user_id in request.user_ids:
            row = await self.lookup(int(user_id))
            if row is not None:
                yield grpc_api.Features(**row)


def deploy_features(*, pool: str | None = "edge-1", num_replicas: int = 1, dataset: str = DATASET,
                    state_pool: str | None = None) -> Any:
    """Deploy the feature service (its per-user state instance first); returns Serve's handle.

    Serve must have been started with :data:`apps.features.grpc_api.SERVICER_FUNCTION` among its
    ``grpc_servicer_functions`` for the gRPC side.
    """
    state = UserState.options(yr.InvokeOptions(pool=state_pool or pool, cpu=0, memory=0)).invoke()
    ep = endpoint(FeatureService, name="FeatureService", route=ROUTE, pool=pool, num_replicas=num_replicas,
                  max_ongoing_requests=32, invoke_options=yr.InvokeOptions(cpu=250, memory=0))
    return run(ep.bind(state, dataset), name=APP, route=ROUTE)
