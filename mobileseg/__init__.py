"""mobileseg: deploy and benchmark mobile semantic-segmentation models."""

from .errors import MobilesegError
from .registry import ModelSpec, create_model, get_spec, list_models, parse_resolution

__version__ = "0.1.0"

__all__ = ["MobilesegError", "ModelSpec", "create_model", "get_spec", "list_models", "parse_resolution", "__version__"]
