"""`invoke bench`: what lara-buildtools exists for, measured against a baseline, as ratios.

Not part of the installed package: the root ``tasks.py`` of this repository offers the task.
:mod:`benchmarks.report` holds the pure parts (medians, ratios, the RESULTS.md table);
:mod:`benchmarks.run` runs the cases (one module each, ``case1_rebuild`` … ``case8_promotion``)
against the real Docker Engine, registry, nginx and git. See benchmarks/README.md for how to
read the results.
"""
