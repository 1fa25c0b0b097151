"""The managed service of the lab: an LSB-style lighttpd init script per node."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node

# Placeholders @NAME@ @PORT@ @BODY@ are substituted by install_httpd().
HTTPD_SCRIPT = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          @NAME@
# Required-Start:    $network
# Required-Stop:     $network
# Default-Start:
# Default-Stop:
# Short-Description: lighttpd serving the node name (hb-appliance test lab)
### END INIT INFO
# Written by appliance.lab.httpd.install_httpd. status prints "@NAME@ is running" or
# "@NAME@ is stopped" (Heartbeat judges status by its text).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
NAME=@NAME@
PORT=@PORT@
BASE=/run/hblab-$NAME
CONF=$BASE/lighttpd.conf
DOCROOT=$BASE/www
PIDFILE=/var/run/$NAME.pid
LOGDIR=/var/log/lighttpd
LIGHTTPD=/usr/sbin/lighttpd
PORTHEX=$(printf '%04X' "$PORT")

alive() {  # pid exists and is not a zombie
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

running() {  # sets $pid
    pid=
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null)
    case "$pid" in ''|*[!0-9]*) pid=; return 1;; esac
    alive "$pid" || return 1
    grep -qx lighttpd "/proc/$pid/comm" 2>/dev/null
}

listening() {
    grep -Eq "^ *[0-9]+: [0-9A-F]{8}:$PORTHEX [0-9A-F]{8}:0000 0A " /proc/net/tcp
}

do_start() {
    if running; then
        echo "$NAME already running"
        return 0
    fi
    rm -f "$PIDFILE"
    mkdir -p "$DOCROOT" "$LOGDIR" /run/lighttpd
    # lighttpd drops to www-data before opening its error log.
    chown www-data:www-data "$LOGDIR" /run/lighttpd
    chmod 755 "$BASE" "$DOCROOT"
    printf '%s\n' '@BODY@' > "$DOCROOT/index.html"
    chmod 644 "$DOCROOT/index.html"
    cat > "$CONF" <<EOF
server.modules = ( "mod_indexfile" )
server.document-root = "$DOCROOT"
server.bind = "0.0.0.0"
server.port = $PORT@LISTEN6@
server.pid-file = "$PIDFILE"
server.errorlog = "$LOGDIR/$NAME-error.log"
server.username = "www-data"
server.groupname = "www-data"
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html" )
EOF
    if ! "$LIGHTTPD" -f "$CONF"; then
        echo "$NAME: lighttpd failed to start"
        return 1
    fi
    i=0
    while [ $i -lt 100 ]; do
        if running && listening; then
            echo "$NAME started"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "$NAME: lighttpd not listening on port $PORT after 10 s"
    return 1
}

do_stop() {
    if running; then
        victim=$pid
        kill -TERM "$victim" 2>/dev/null
        i=0
        while [ $i -lt 100 ] && alive "$victim"; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$victim"; then
            kill -KILL "$victim" 2>/dev/null
            sleep 0.1
        fi
    fi
    rm -f "$PIDFILE"
    echo "$NAME stopped"
    return 0
}

case "$1" in
    start) do_start ;;
    stop) do_stop ;;
    restart|force-reload) do_stop; do_start ;;
    status)
        if running; then
            echo "$NAME is running"
            exit 0
        fi
        echo "$NAME is stopped"
        exit 3
        ;;
    *)
        echo "Usage: $0 {start|stop|status|restart}" >&2
        exit 2
        ;;
esac
"""


def httpd_script(node_name: str, port: int = 80, name: str = "httpd", ipv6: bool = False) -> str:
    """The init script text (body served = node_name); ipv6 also listens on [::]:port."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"bad service name {name!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.@:-]+", node_name):
        raise ValueError(f"bad body {node_name!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r}")
    # The conf is written by an unquoted here-document: \$ keeps lighttpd's $SERVER.
    listen6 = f'\n\\$SERVER["socket"] == "[::]:{int(port)}" {{ }}' if ipv6 else ""
    return (HTTPD_SCRIPT.replace("@NAME@", name).replace("@PORT@", str(int(port)))
            .replace("@BODY@", node_name).replace("@LISTEN6@", listen6))


def install_httpd(node: Node, port: int = 80, name: str = "httpd", ipv6: bool = False) -> None:
    """Write /etc/ha.d/resource.d/<name> (default httpd) into node: an LSB init script
    (start|stop|status|restart) running lighttpd on 0.0.0.0:port whose page body is the
    node name. start returns once lighttpd listens (bounded 10 s); stop succeeds when
    already stopped; status prints "<name> is running" / "<name> is stopped". ipv6=True also
    listens on [::]:port (IPV6_V6ONLY, lighttpd's default), for IPv6 floating addresses."""
    node.write(f"/etc/ha.d/resource.d/{name}", httpd_script(node.name, port, name, ipv6),
               mode=0o755)
