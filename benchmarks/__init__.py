"""`invoke bench`: what lara-buildtools exists for, measured against a baseline, as ratios.

:mod:`benchmarks.report` holds the pure parts (medians, ratios, the RESULTS.md table);
:mod:`benchmarks.run` runs the four cases against the real Docker Engine, registry, nginx
and git. See benchmarks/README.md for how to read the results.
"""
