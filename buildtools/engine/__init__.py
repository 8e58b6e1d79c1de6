"""The Docker Engine: connecting, building, local images, pushes through it, running stacks."""
