#!/bin/sh
# Run by the postgres image when it creates the `db` service's database (first start only): lets the
# optional `db-replica` service (docker-compose --profile replica) stream the WAL as the hub user.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
