"""sonode: model one audio clip as the trajectory of a neural ordinary differential equation."""

__version__ = "0.1.0"
