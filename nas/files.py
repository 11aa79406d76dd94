"""Writing files so that a reader never sees half of one: a temporary name, then an atomic rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from snnas.nas.failpoints import failpoint


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder (safe with
    several writers); on any failure (a full disk, a kill) the old file, if any, is left intact
    and the temporary file removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        failpoint("write")
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Matplotlib settings of every figure snnas writes for a paper (one column, serif, 8 pt).
PAPER_STYLE = {"font.family": "serif", "font.size": 8, "axes.labelsize": 8, "legend.fontsize": 7,
               "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False}


def write_figure(fig, stem: Path, formats: tuple[str, ...] = ("png", "pdf", "svg")) -> list[Path]:
    """A matplotlib figure as ``stem.png/.pdf/.svg``, each written atomically; returns the paths."""
    import io

    paths = [stem.with_suffix(f".{ext}") for ext in formats]
    for path in paths:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:])
        atomic_write(path, buffer.getvalue())
    return paths
