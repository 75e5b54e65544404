"""I/O lives here: loading tenants, the CLI, signing, the HTTP server and docs.

Nothing in the core (``claimsengine.model``, ``rules``, ``engine``, ``actions``,
``auth0``, ``lint``) imports this package. Adapters translate; they never decide.
"""
