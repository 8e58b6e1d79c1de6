"""The ordered steps of a task over one plan: build, smoke test, push, promote, verify."""
