"""What is being built, read once: git and the CI environment into one frozen BuildInfo."""
