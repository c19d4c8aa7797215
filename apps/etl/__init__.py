"""Big-data ETL: a Ray Data pipeline over Parquet that publishes per-user features through datashare."""

from __future__ import annotations

from apps.etl.pipeline import DATASET, EtlResult, expected_features, generate_events, run_etl

__all__ = ["DATASET", "EtlResult", "expected_features", "generate_events", "run_etl"]
