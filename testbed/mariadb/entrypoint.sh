#!/bin/sh
# First start (empty data directory): make the system tables, then the database and the user
# from MARIADB_* in bootstrap mode (no network), so that once the server answers they exist.
# Later starts keep the data and ignore MARIADB_*. Then run the command (mariadbd).
set -eu

datadir=/var/lib/mysql

fail() {
    echo "lara-mariadb-entrypoint: $*" >&2
    exit 64
}

# printf, not echo: dash's echo would turn a password's backslashes into escapes.
sql() {
    printf '%s\n' "$*"
}

# A quoted SQL string: backslashes and single quotes doubled.
sql_string() {
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

if [ "$1" = mariadbd ] && [ ! -d "$datadir/mysql" ]; then
    : "${MARIADB_PASSWORD:?set MARIADB_PASSWORD (the password of MARIADB_USER)}"
    for name in "$MARIADB_DATABASE" "$MARIADB_USER"; do
        case "$name" in
            '' | *[!A-Za-z0-9_]*) fail "MARIADB_DATABASE and MARIADB_USER must be [A-Za-z0-9_]+, not '$name'" ;;
        esac
    done
    echo "lara-mariadb-entrypoint: first start, creating database $MARIADB_DATABASE and user $MARIADB_USER"
    # A failed first start leaves no half-made data directory behind: the next start retries.
    trap 'rm -rf "${datadir:?}"/*' EXIT
    # root@localhost and mysql@localhost log in through the socket as those OS users only:
    # `docker exec` as mysql (the image's user) gets an admin client, and the HEALTHCHECK's
    # mysqladmin ping is not an "access denied" warning in the log every 5 s.
    mariadb-install-db --datadir="$datadir" --user=mysql --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
    {
        # Bootstrap mode starts without the grant tables; CREATE USER needs them loaded.
        sql "FLUSH PRIVILEGES;"
        sql "CREATE DATABASE \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4;"
        sql "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
        sql "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
        if [ -n "${MARIADB_ROOT_PASSWORD:-}" ]; then
            sql "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$MARIADB_ROOT_PASSWORD");"
            sql "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        fi
    } | mariadbd --bootstrap --datadir="$datadir" --log-warnings=0
    trap - EXIT
fi

exec "$@"
