"""The replicas and the client of ``bench/continuum.py``: stand-ins, the demo apps' own code, the caller.

Kept apart from the benchmark's placement and reporting so that each file holds one thing.
"""

from __future__ import annotations

import time
from typing import Any

ETL_ROWS = 200_000
"""Events one ETL job of ``--apps real`` aggregates (two Parquet files; about 15–20 ms warm here)."""


def actors() -> tuple[Any, Any, Any]:
    """``(Service, AppService, Client)`` as Ray actor classes (defined here so Ray is imported lazily)."""
    import ray

    @ray.remote(num_cpus=1)
    class Service:
        """A stand-in replica: spins for the app's nominal service time (the ETL's job time too)."""

        def __init__(self, app: str = "") -> None:
            self.app = app

        def work(self, ms: float) -> None:
            end = time.perf_counter() + ms / 1e3
            while time.perf_counter() < end:
                pass

        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1)
    class AppService:
        """A replica running the demo app's own code (``apps/``); a request's time is what that code takes.

        features: the ETL's feature table (``apps.etl.pipeline`` on 20,000 seeded events) and one
        lookup as ``apps.features.service.FeatureService`` does it (``pc.index`` on ``user_id``, one
        row out); classifier: ``apps.inference.models.train_digits`` at start, one held-out image
        classified per request; generator: ``apps.inference.models.BigramLM``, 3 tokens with the
        app's per-token decode time (``TokenModel``, 5 ms a token); etl: one job is the pipeline's
        own per-block step (``_read_partial``: read a Parquet file, aggregate it in Arrow) over the
        two files of :data:`ETL_ROWS` seeded events, then its ``combine`` into the feature table —
        what ``run_etl`` runs, here in the one replica instead of Ray Data tasks.
        """

        def __init__(self, app: str) -> None:
            import random
            import tempfile

            self.app, self._rng = app, random.Random(7)
            if app == "features":
                from apps.etl.pipeline import expected_features, generate_events

                with tempfile.TemporaryDirectory() as d:
                    self._table = expected_features(generate_events(d, rows=20_000, users=2_000, files=1))
                self._users = self._table["user_id"].to_pylist()
            elif app == "classifier":
                from apps.inference.models import train_digits

                self._model = train_digits()
            elif app == "generator":
                from apps.inference.models import BigramLM

                self._lm = BigramLM()
            elif app == "etl":
                from apps.etl.pipeline import generate_events

                self._dir = tempfile.TemporaryDirectory()
                self._paths = generate_events(self._dir.name, rows=ETL_ROWS, users=2_000, files=2)

        def work(self, ms: float) -> None:
            if self.app == "features":
                import pyarrow as pa
                import pyarrow.compute as pc

                i = pc.index(self._table["user_id"], pa.scalar(self._rng.choice(self._users), pa.int64())).as_py()
                self._table.slice(i, 1).to_pylist()
            elif self.app == "classifier":
                x = self._model.test_x
                self._model.predict(x[self._rng.randrange(len(x))].reshape(1, -1))
            elif self.app == "generator":
                for _ in self._lm.tokens("the zen of", 3, seed=self._rng.randrange(1000)):
                    time.sleep(0.005)
            elif self.app == "etl":
                import pyarrow as pa

                from apps.etl.pipeline import _read_partial, combine

                combine(pa.concat_tables([_read_partial(pa.table({"path": [str(p)]})) for p in self._paths]))

        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0)
    class Client:
        def drive(self, replicas: list, ms: float, n: int) -> list[float]:
            out = []
            for i in range(n):
                r = replicas[i % len(replicas)]
                if r is None:  # a replica nobody could place: its share of requests is lost
                    out.append(float("inf"))
                    continue
                t0 = time.perf_counter()
                ray.get(r.work.remote(ms))
                out.append((time.perf_counter() - t0) * 1e3)
            return out

    return Service, AppService, Client
