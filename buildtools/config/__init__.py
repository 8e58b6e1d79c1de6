"""The ``buildtools`` config section: its keys, defaults, types and checks, and loading it
through invoke. The lowest layer: it imports nothing of buildtools but :mod:`buildtools.errors`."""
