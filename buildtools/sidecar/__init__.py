"""The nginx sidecar: its nginx config, its image's build context, and the asset fallback.
The sidecar's Dockerfile, entrypoint and health check live beside this module, as data."""
