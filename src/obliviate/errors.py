"""Exceptions raised by obliviate. Each carries a message meant for the person running the tool."""


class ObliviateError(Exception):
    """Base class of every error obliviate raises on purpose."""


class DataError(ObliviateError):
    """Input data is missing, malformed or inconsistent (the message names file and line)."""


class ModelLoadError(ObliviateError):
    """A model could not be found or loaded."""


class ConfigError(ObliviateError):
    """A configuration value or file is invalid."""
