"""On PostgreSQL, a version's search terms go with it by one trigger per statement, not a foreign key checked per row

Revision ID: 0026_terms_trigger
Revises: 0025_webauthn

The foreign key from ``object_values`` to ``object_versions`` made PostgreSQL check, for every term
row written (four to five per version), that its version exists and lock that version's row: a fifth
of the database server's work in a bulk import (measured: 101-104 us of server CPU per object with it,
83-84 us without). Only the writer inserts terms, for the versions it has just inserted under the
writer lock, so the check never finds anything; what the key really did was delete a version's terms
with it. An AFTER DELETE trigger per statement does that now, with one join over the statement's
deleted rows (a collection's cascade included). SQLite keeps the key: its check is one lookup in the
versions' own b-tree, and dropping it would rebuild the table.
"""

from alembic import op

revision = "0026_terms_trigger"
down_revision = "0025_webauthn"
branch_labels = None
depends_on = None

FOREIGN_KEY = "object_values_version_pk_fkey"
FUNCTION = """
CREATE FUNCTION hub_delete_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM object_values AS term USING deleted_versions AS gone WHERE term.version_pk = gone.pk;
    RETURN NULL;
END
$$
"""
TRIGGER = """
CREATE TRIGGER object_versions_delete_terms AFTER DELETE ON object_versions
REFERENCING OLD TABLE AS deleted_versions FOR EACH STATEMENT EXECUTE FUNCTION hub_delete_terms()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint(FOREIGN_KEY, "object_values", type_="foreignkey")
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER object_versions_delete_terms ON object_versions")
    op.execute("DROP FUNCTION hub_delete_terms()")
    # Terms left by a version deleted some other way (none are) would fail the key: drop them first.
    op.execute(
        "DELETE FROM object_values AS term "
        "WHERE NOT EXISTS (SELECT 1 FROM object_versions AS v WHERE v.pk = term.version_pk)"
    )
    op.create_foreign_key(FOREIGN_KEY, "object_values", "object_versions", ["version_pk"], ["pk"], ondelete="CASCADE")
