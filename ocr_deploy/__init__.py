"""What brings an environment's Dagster deployment up, and the commands CI calls to deploy.

``instance`` writes a deployment's instance and workspace files, ``serve`` starts one of its
services (code location, daemon, webserver), ``graphql`` talks to a running webserver and
``run`` launches and follows a deployment's runs through it (``ocr-dagster deploy run``).
``deploy/README.md`` says how a host runs them.
"""
