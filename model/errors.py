"""Typed errors. The CLI prints them as one line (exit code 2); the service turns them into JSON."""


class RnnmtError(Exception):
    """Base class of every error a user can cause and fix."""

    code = "rnnmt_error"


class ConfigError(RnnmtError):
    code = "bad_config"


class ModelLoadError(RnnmtError):
    code = "model_load_failed"


class DataError(RnnmtError):
    code = "bad_data"


class InputError(RnnmtError):
    code = "bad_input"


class WriteError(RnnmtError):
    """A file could not be written (no space left, file too large, no permission); the previous one is intact."""

    code = "write_failed"


class PrecisionError(ConfigError):
    """The precision asked for is not one this CPU (or device, or model) can decode in."""

    code = "precision_unsupported"
