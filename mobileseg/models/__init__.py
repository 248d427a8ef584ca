"""Model definitions. Importing this package registers every model with :mod:`mobileseg.registry`.

Model modules whose optional dependencies are missing are skipped (none have any today: models need only torch).
"""
from importlib import import_module

_MODULES = ["topformer", "segformer", "xformer", "baselines"]

for _name in _MODULES:
    try:
        import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a module not written yet
        if exc.name != f"{__name__}.{_name}":
            raise
