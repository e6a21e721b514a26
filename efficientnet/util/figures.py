"""The reports' plots: a matplotlib figure made without a display and written as a PNG.

The iteration's report (pipelines/report.py) and the robustness benchmarks'
(robustness/report.py) each draw one figure; both make it with `subplots` and
write it with `write_png`, so the backend and the file handling live here once.
matplotlib draws with its Agg backend (no display: a VM, a container, CI) and
is imported on first use, because only the reports need it and it is slow to
import. The PNG goes through `fileio`: written atomically, local or `gs://`.
"""

from __future__ import annotations

import io

from efficientnet.util import fileio

DPI = 100


def subplots(*args, **kwargs):
    """`matplotlib.pyplot.subplots` on the Agg backend: (figure, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def write_png(path: str, figure) -> None:
    """Lays `figure` out tightly, writes it to `path` as a PNG and closes it (freeing its memory)."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    fileio.write_bytes(path, buffer.getvalue())
