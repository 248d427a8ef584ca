"""Model definitions. Importing this package registers every model with :mod:`mobileseg.registry` (models need
only torch)."""

from importlib import import_module

_MODULES = ["topformer", "segformer", "xformer", "baselines"]

for _name in _MODULES:
    import_module(f"{__name__}.{_name}")
