"""Measurements of the toolkit itself (export time, XFA scaling): ``python -m mobileseg.perf.<name>``, written under
results/runs/ (the committed runs: results/reference/). Not the bench stage (:mod:`mobileseg.bench`) nor suite files (bench/)."""
