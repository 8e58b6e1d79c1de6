"""lara-buildtools: build and release LARA's Docker images with version info.

A pure core (``buildinfo`` -> ``tags``, ``labels``, ``versionfile``) computes what an image
is; thin edges (``gitinfo``, ``ci``, ``images``, ``registry``, ``nginx``) talk to the world.
"""
