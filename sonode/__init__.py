"""sonode: model one audio clip as the trajectory of a neural ordinary differential equation."""

__version__ = "0.1.0"

from sonode.api import Fitted, fit, load  # noqa: E402  (version must exist before api imports it)

__all__ = ["fit", "load", "Fitted", "__version__"]
