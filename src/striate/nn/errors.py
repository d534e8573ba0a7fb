"""The one exception type for bad layer input: a ValueError whose message names the layer."""


class LayerError(ValueError):
    """Bad input to a layer: wrong shape, dtype or values. The message names the layer, its position
    in any container, the expected shape and the shape received."""
