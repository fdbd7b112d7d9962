"""The gap-filling methods by name: the one list behind `sonode fill --method`, `sonode.tasks.fill`
and `sonode eval --task fill`.

No imports, so the CLI can offer the choices without loading torch. ``sonode`` and ``sonode_fit``
are implemented in `sonode.tasks.fill`; every other name is a two-sided classical filler
``f(left, right, n_gap) -> (n_gap,)`` registered under the same name in
`sonode.dsp.ar_fill.GAP_FILLERS` (see docs/extending.md).
"""

from __future__ import annotations

# name -> one-line description (the CLI's help text). Order: how results and --help list them.
FILL_METHODS: dict[str, str] = {
    "sonode": (
        "the most likely trajectory through the gap of a linear ODE identified on both sides "
        "(order chosen on pseudo-gaps in the clip)"
    ),
    "sonode_fit": (
        "fitted neural ODEs run forward from the left and backward from the right, blended"
    ),
    "janssen": "gap-wise AR interpolation (Burg, order ≤ 1024)",
    "burg_xfade": "two-sided Burg LPC with a cross-fade",
}
# The model-based methods, implemented in sonode.tasks.fill; the rest are classical GAP_FILLERS.
MODEL_FILL_METHODS = ("sonode", "sonode_fit")
DEFAULT_FILL_METHOD = "sonode"
# What `sonode eval --task fill` scores unless told otherwise: sonode_fit fits two models per gap.
EVALUATED_FILL_METHODS = tuple(m for m in FILL_METHODS if m != "sonode_fit")


def fill_methods_help() -> str:
    """``name: description; ...`` for every method, in registry order."""
    return "; ".join(f"{name}: {text}" for name, text in FILL_METHODS.items()) + "."
