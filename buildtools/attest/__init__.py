"""Signatures, provenance and SBOMs in the registry, in the formats cosign reads and writes."""
