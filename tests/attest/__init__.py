"""Tests of buildtools.attest: signing, provenance and SBOMs."""
