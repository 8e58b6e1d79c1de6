"""Pure decisions from the facts and the settings: tags, labels, version.yml, the release rule,
what is pushed in which order, and promotion's manifest rewrite. Nothing here does I/O."""
