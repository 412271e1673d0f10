"""Figures as PNG bytes, drawn without a display (a worker has none)."""

from __future__ import annotations

import io


def figure(**subplots):
    """A matplotlib figure and its axes (`plt.subplots` arguments), on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(**subplots)


def png(drawn, **savefig) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one alive)."""
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    drawn.tight_layout()
    drawn.savefig(out, format="png", dpi=100, **savefig)
    plt.close(drawn)
    return out.getvalue()
