"""The mobile CNN baselines of TopFormer's Table 1, in mmseg's module layout (one architecture per module).

Backbones: :mod:`.mobilenetv2` (mmseg ``MobileNetV2``, dilated), :mod:`.mobilenetv3` (mmseg ``MobileNetV3``
large, with the "reduce" tail), :mod:`.hrnet` (mmseg ``HRNet``). Segmentation models (registered on import):
``fcn-mbv2``, ``pspnet-mbv2``, ``deeplabv3plus-mbv2``, ``lite-aspp-mbv2``, ``r-aspp-mbv2``, ``lraspp-mbv3-large``,
``lraspp-mbv3-large-reduce``, ``hrnet-w18-small``.
"""

from . import _common  # noqa: F401  (registers the mmseg checkpoint converter)
from . import deeplabv3plus, fcn, hrnet, lraspp, pspnet, rasp  # noqa: F401
