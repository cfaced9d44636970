"""Errors a user can cause. Each message names the cause and the fix; the CLI prints it
without a traceback and exits non-zero."""


class SpikelabError(Exception):
    """Base class of every error spikelab raises for bad input."""


class DatasetNotFoundError(SpikelabError):
    """Dataset files are missing and cannot be downloaded."""


class CorruptFileError(SpikelabError):
    """A data file exists but does not have the expected format."""


class CheckpointError(SpikelabError):
    """A file is not a spikelab checkpoint, or is not safe to load."""


class ConfigError(SpikelabError):
    """An option or argument has a value spikelab cannot use."""


class TrainingError(SpikelabError):
    """Training cannot go on (the loss diverged, say)."""


class ExportError(SpikelabError):
    """A trained network cannot be represented on the requested backend (layer, reset or limit)."""


class MissingDependencyError(SpikelabError):
    """An optional package that a feature needs is not installed (the message names the extra to install)."""
