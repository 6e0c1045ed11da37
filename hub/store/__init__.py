"""Storage: the SQL of the TAXII read and write paths, the feeds, the ledger, retention and the audit trail.

One module per job, imported by name (``from hub.store import reads, writes``):

- ``tables``: the tables and the clauses several modules share;
- ``clock``: the hub clock, the one writer lock, and ``add_dated`` (every ``date_added`` and withdrawal
  position is handed out there);
- ``snapshots``: the sharing configuration loaded for one rules version (``Snapshot``);
- ``reads``: the partner's view, with the sharing rules as one WHERE clause (``reads._visible``);
- ``writes``: versions, origins, restriction sets, markings and statuses as ingest stores them;
- ``values``: the search terms of each version (names, aliases, observable values) the admin panel finds it by;
- ``deliveries``, ``recalls``, ``archive``: the delivery ledger, withdrawals and recalls, retention;
- ``logins``, ``auditlog``: API keys and login failures, the hash-chained audit trail;
- ``feedback``: sightings and opinions in feedback collections, and false-positive flags.

Other modules build SQL too, through the ORM, on the tables they own: the sharing-configuration
writer, plan and export (``hub.sharing``), API keys and panel accounts (``hub.accounts``), the
reference collection (``hub.reference``), the admin panel's listings (``hub.admin.data_*``,
``dashboard``, ``preview``), the panel accounts' second factor (``hub.mfa``,
``hub.admin.signin``), the CLI and demo set-up (``hub.cli.accounts``, ``hub.demo.setup``), the
feed scheduler's lease (``feeds.schedule``), the database helpers (``hub.db``) and the migrations.
"""
