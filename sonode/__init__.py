"""sonode: model one audio clip as the trajectory of a neural ordinary differential equation.

`fit`, `load` and `Fitted` live in `sonode.api` and are imported on first use, so that
``import sonode`` (and ``import sonode.ode``) loads no audio library.
"""

from sonode._version import __version__

__all__ = ["fit", "load", "Fitted", "__version__"]


def __getattr__(name: str):
    if name in ("fit", "load", "Fitted"):
        from sonode import api

        return getattr(api, name)
    raise AttributeError(f"module 'sonode' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
