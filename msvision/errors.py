"""The one exception type for user mistakes (bad config, data, checkpoint)."""


class MsvisionError(Exception):
    """A user-facing error: the message names what is wrong and what is expected."""
