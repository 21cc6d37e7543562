"""The one exception type for user mistakes (bad config, data, checkpoint)."""


class MsvisionError(Exception):
    """A user-facing error: the message names what is wrong and what is expected."""


def name_list(names, limit=5):
    """Sorted names for a one-line message: the first `limit`, then how many more."""
    names = sorted(names)
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
