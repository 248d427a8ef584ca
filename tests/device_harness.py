"""device_scripts/harness.py loaded as a module (it is a script that imports nothing from mobileseg)."""

import importlib.util

from mobileseg.resources import project_path


def load_harness():
    spec = importlib.util.spec_from_file_location(
        "mobileseg_device_harness", project_path("device_scripts", "harness.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
