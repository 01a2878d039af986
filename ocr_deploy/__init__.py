"""What brings an environment's Dagster deployment up, and the commands CI calls to deploy.

``commands`` is ``ocr-dagster deploy …``: ``plan`` says what a GitHub event deploys, ``wipe``
deletes one namespace's outputs, ``serve`` starts one service of a deployment (code location,
daemon, webserver) with the instance and workspace files of ``instance`` and the settings of
``deployment``, and ``run`` launches and follows a deploy through the deployment's GraphQL API
(``graphql``, ``queries``). ``software_env`` builds the Coiled software environment a
deployment's clusters run. ``deploy/README.md`` says how a host runs them.
"""
