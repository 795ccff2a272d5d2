"""User-facing errors of the torch-only model package."""

from __future__ import annotations


class ModelError(Exception):
    """An error whose message tells the user what is wrong and what to do."""


class CheckpointError(ModelError):
    """A checkpoint cannot be read, or does not fit the model or the features."""


class FeatureFileError(ModelError):
    """A feature file cannot be read or does not carry what is needed."""
