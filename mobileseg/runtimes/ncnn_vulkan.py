"""ncnn on a Vulkan device (``ncnn-vulkan``): the ncnn adapter with ``use_vulkan_compute`` on one chosen device.

Phones run ncnn's compute shaders on their GPU, usually with fp16 storage and arithmetic: precision ``fp16`` here is
exactly that (``use_fp16_packed/storage/arithmetic`` on), ``fp32`` turns all three off. Without a GPU, Mesa's CPU
driver lavapipe (Debian's ``mesa-vulkan-drivers``) runs the same shaders: its numbers check the shaders against
PyTorch, its timings are a software driver's, so records say which device and driver ran them and whether it is a
software implementation (``vulkan_software``), and the report keeps those off latency axes
(:func:`mobileseg.results.table.numerics_only`). See docs/converters.md, "ncnn on Vulkan".
"""

from __future__ import annotations

import os
from functools import lru_cache

from ..errors import MissingDependencyError, require
from .base import Runtime
from .ncnn import NcnnRuntime

DEVICE_ENV = "MOBILESEG_VULKAN_DEVICE"  # the Vulkan device index to run on (default: ncnn's default device)
SOFTWARE_DRIVER_HINT = (
    "install a GPU driver, or Mesa's software Vulkan driver lavapipe "
    "(apt-get install mesa-vulkan-drivers on Debian/Ubuntu)"
)
# ncnn's GpuInfo.type(): VkPhysicalDeviceType folded to these
DEVICE_TYPES = {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}
VENDORS = {
    0x10005: "Mesa",
    0x1AE0: "Google",
    0x5143: "Qualcomm",
    0x13B5: "ARM",
    0x1010: "Imagination",
    0x144D: "Samsung",
    0x8086: "Intel",
    0x10DE: "NVIDIA",
    0x1002: "AMD",
    0x106B: "Apple",
}
# software implementations by the device name they report (all three report device type CPU)
SOFTWARE_DRIVERS = {"llvmpipe": "lavapipe (Mesa)", "swiftshader": "SwiftShader"}


class VulkanUnavailableError(MissingDependencyError):
    """No Vulkan device, or its driver cannot create one: a missing system package, said in one sentence."""


def api_version_text(v: int) -> str:
    """``VK_MAKE_API_VERSION`` decoded: 4206822 -> "1.3.230"."""
    return f"{(v >> 22) & 0x7F}.{(v >> 12) & 0x3FF}.{v & 0xFFF}"


def describe(info, index: int) -> dict:
    """The record fields of a ``ncnn.GpuInfo``: which device and driver, and whether it is software."""
    name = str(info.device_name())
    kind = DEVICE_TYPES.get(int(info.type()), "other")
    vendor_id = int(info.vendor_id())
    driver = next((d for key, d in SOFTWARE_DRIVERS.items() if key in name.lower()), None)
    return {
        "vulkan_device": name,
        "vulkan_device_index": index,
        "vulkan_device_type": kind,
        "vulkan_vendor": VENDORS.get(vendor_id, hex(vendor_id)),
        "vulkan_vendor_id": vendor_id,
        "vulkan_driver": driver or VENDORS.get(vendor_id, hex(vendor_id)),
        "vulkan_driver_version": int(info.driver_version()),
        "vulkan_api_version": api_version_text(int(info.api_version())),
        "vulkan_software": bool(kind == "cpu" or driver is not None),
    }


@lru_cache(maxsize=None)
def find_device(requested: str | None = None) -> tuple[int, dict]:
    """``(index, fields)`` of the Vulkan device to run on: ``requested`` (an index), else ncnn's default device."""
    ncnn = require("ncnn", "ncnn", "running ncnn artifacts")
    count = int(ncnn.get_gpu_count())  # 0 also when the Vulkan loader finds no driver or vkCreateInstance fails
    if count < 1:
        raise VulkanUnavailableError(f"ncnn finds no Vulkan device: {SOFTWARE_DRIVER_HINT}")
    if requested not in (None, ""):
        try:
            index = int(requested)
        except ValueError:
            index = -1
        if not 0 <= index < count:
            raise VulkanUnavailableError(
                f"{DEVICE_ENV}={requested} is not a Vulkan device index: ncnn finds {count} device(s), 0..{count - 1}"
            )
    else:
        index = int(ncnn.get_default_gpu_index())
    fields = describe(ncnn.get_gpu_info(index), index)
    if ncnn.get_gpu_device(index) is None:
        raise VulkanUnavailableError(
            f"the Vulkan driver of '{fields['vulkan_device']}' fails to create the device: {SOFTWARE_DRIVER_HINT}"
        )
    return index, fields


class NcnnVulkanRuntime(NcnnRuntime):
    name = "ncnn-vulkan"

    def vulkan(self) -> tuple[int, dict]:
        return find_device(os.environ.get(DEVICE_ENV))

    def check(self) -> None:
        self.version()
        self.vulkan()

    op_profile = Runtime.op_profile  # ncnn's layer-by-layer profile times the CPU: none for the Vulkan device
