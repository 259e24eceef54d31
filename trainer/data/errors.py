"""The one error type of the data layer."""


class DataError(ValueError):
    """Bad data input: a missing source, a corrupt or inconsistent file, an unknown dataset.

    The message is one line and names the bad thing (a file, a directory or a config key) and
    what is allowed instead.
    """
