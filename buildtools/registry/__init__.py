"""The registry API: credentials, authentication, retries, reads and writes, no engine."""
