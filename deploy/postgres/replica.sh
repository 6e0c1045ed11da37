#!/bin/sh
# Entry point of the optional `db-replica` service: on first start, clone the `db` service with
# pg_basebackup into a hot standby that follows it by streaming replication; then run it.
set -eu
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
    until pg_isready -h db -U "${PRIMARY_USER}" -d hub -q; do sleep 1; done
    mkdir -p "${PGDATA}"
    chown postgres:postgres "${PGDATA}"
    chmod 700 "${PGDATA}"
    conninfo="host=db port=5432 user=${PRIMARY_USER} password=${PRIMARY_PASSWORD} application_name=db-replica"
    gosu postgres pg_basebackup -d "${conninfo}" -D "${PGDATA}" -R -X stream --checkpoint=fast
    echo "primary_conninfo = '${conninfo}'" >> "${PGDATA}/postgresql.auto.conf"
fi
exec gosu postgres postgres -c hot_standby=on
