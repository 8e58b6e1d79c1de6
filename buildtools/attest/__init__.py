"""Signing, provenance and SBOMs: what proves an image in the registry is what was built."""
