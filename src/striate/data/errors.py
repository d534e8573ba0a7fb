"""The one exception type for bad data: a ValueError whose message names the file or array at fault."""


class DataError(ValueError):
    """Bad data: wrong dtype or shape, NaN/inf, labels out of range, an empty or unreadable image folder,
    a corrupt or truncated archive, or a download that could not be completed."""
