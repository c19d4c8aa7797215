"""AI inference: a digits classifier with Serve batching, and a token-streaming text generator."""

from __future__ import annotations

from apps.inference.models import BigramLM, train_digits
from apps.inference.service import DigitClassifier, GenerateAPI, TokenModel, deploy_inference

__all__ = ["BigramLM", "DigitClassifier", "GenerateAPI", "TokenModel", "deploy_inference", "train_digits"]
