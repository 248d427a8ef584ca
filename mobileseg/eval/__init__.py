"""mIoU of an exported model on a dataset in the standard folder layout (``mobileseg eval``).

``metrics`` (confusion matrix, IoU) and ``datasets`` (folder layouts, image reading) need only numpy (+ PIL or
matplotlib to read images); ``evaluate`` exports the model and runs it through a runtime adapter.
"""

from .metrics import ConfusionMatrix

__all__ = ["ConfusionMatrix"]
