"""Per-layer capture on an ADB device: the device harness runs the artifact and returns every intermediate tensor,
pulled back as one ``.npz`` file (see ``device_scripts/harness.py --intermediates`` and the native harness's
``--intermediates``)."""
from __future__ import annotations

from ..errors import MobilesegError


class NoIntermediatesError(MobilesegError):
    """The device (its harness or runtime) cannot return intermediate tensors."""


def capture_on_target(target, export_dir: str, fmt: str, runtime: str, precision: str):
    """``(tensors, device label)`` from a bench target that can return intermediates, else one sentence."""
    fn = getattr(target, "capture_intermediates", None)
    if fn is None:
        raise NoIntermediatesError(f"the {getattr(target, 'kind', '?')} target cannot return intermediate tensors "
                                   f"(per-layer analysis runs on the host or on an ADB device)")
    return fn(export_dir, fmt, runtime, precision)
