"""Feature microservice: per-user features over HTTP and gRPC, read zero-copy from the ETL's dataset."""

from __future__ import annotations

from apps.features.service import FeatureService, UserState, deploy_features

__all__ = ["FeatureService", "UserState", "deploy_features"]
