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
