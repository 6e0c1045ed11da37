"""Storage: the SQL of the TAXII read and write paths, the feeds, the ledger, retention and the audit trail.

One module per job, imported by name (``from hub.store import reads, writes``):

- ``tables``: the tables and the clauses several modules share;
- ``clock``: the hub clock, the one writer lock, and ``add_dated`` (every ``date_added`` and withdrawal
  position is handed out there);
- ``snapshots``: the sharing configuration loaded for one rules version (``Snapshot``);
- ``reads``: the partner's view, with the sharing rules as one WHERE clause (``reads._visible``);
- ``writes``: versions, origins, restriction sets, markings and statuses as ingest stores them;
- ``deliveries``, ``recalls``, ``archive``: the delivery ledger, withdrawals and recalls, retention;
- ``logins``, ``auditlog``: API keys and login failures, the hash-chained audit trail.

Other modules build SQL too, on their own tables, through the ORM: the sharing-configuration writer
(``hub.sharing``), the admin panel's listings (``hub.admin.data``, ``dashboard``, ``preview``), the panel
accounts' second factor (``hub.mfa``, ``hub.admin.signin``), the CLI
and demo set-up (``hub.cli``, ``hub.demo``), the database helpers (``hub.db``), the feed scheduler
(``feeds.schedule``) and the migrations.
"""
