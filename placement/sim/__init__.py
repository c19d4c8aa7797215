"""Simulator: the placement policies against a synthetic edge–fog–cloud continuum (``python -m placement.sim``)."""
