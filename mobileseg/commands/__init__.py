"""CLI sub-commands; one module each, registered by :mod:`mobileseg.cli`."""
