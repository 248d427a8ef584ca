"""Report stage: published numbers, Pareto plots, tables and HTML from measurement records; mIoU evaluation.

Importing this package needs only pandas and matplotlib (``evaluate`` additionally needs torch and the runtimes
and is imported on demand).
"""

from .build import Report, build_report
from .pareto import frontier_path, pareto_mask
from .published import figure1_rows, load_published

__all__ = ["Report", "build_report", "frontier_path", "pareto_mask", "figure1_rows", "load_published"]
