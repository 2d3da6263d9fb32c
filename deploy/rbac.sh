#!/bin/sh
# rbac.sh: give each rollcall host write access to its own etcd subtree only.
#
#   deploy/rbac.sh [-n] [-a] HOST[:SERVICE,SERVICE...] ...
#
# Each argument is a host and the services whose master elections its agent
# joins (those with master_election: true in its config), e.g.
#
#   deploy/rbac.sh host1:web host2:web,db host3
#
# It creates, under prefix P ($ROLLCALL_PREFIX, default /rollcall):
#
#   role rollcall-reader        read       P/                 (everything)
#   role rollcall-host-<host>   readwrite  P/hosts/<host>/    (its records)
#                               readwrite  P/elections/<svc>/ (each SERVICE listed)
#   user <host>                 roles rollcall-host-<host>, rollcall-reader
#   user rollcall-dns           role  rollcall-reader         (CoreDNS)
#
# No role here may write P/maintenance/: maintenance records are written by
# operators with root's credentials (rollcall maint), never by a host.
#
# Users have no password: etcd takes the user name from the client
# certificate's CN (deploy/certs.md makes one per host, CN=<host>).
# test/rbac computes the same plan in Go, and its test checks that this
# script prints exactly the commands that plan spells.
#
#   -n   print the etcdctl commands, run nothing
#   -a   also create the root user (no password: use a CN=root certificate)
#        and enable auth; without -a, enable it yourself when ready:
#        etcdctl user add root --no-password; etcdctl user grant-role root root;
#        etcdctl auth enable
#
# etcdctl is $ETCDCTL (default etcdctl) and reads its connection from its own
# environment: ETCDCTL_ENDPOINTS, ETCDCTL_CERT, ETCDCTL_KEY, ETCDCTL_CACERT
# (as root once auth is on). Running the script again is safe: what exists is
# kept.
set -eu

ETCDCTL=${ETCDCTL:-etcdctl}
P=${ROLLCALL_PREFIX:-/rollcall}
P=${P%/}
dry=0
auth=0
while getopts na opt; do
	case $opt in
	n) dry=1 ;;
	a) auth=1 ;;
	*) echo "usage: $0 [-n] [-a] HOST[:SERVICE,...] ..." >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	echo "usage: $0 [-n] [-a] HOST[:SERVICE,...] ...   (no hosts given)" >&2
	exit 2
fi
case $P in
/*) ;;
*) echo "$0: ROLLCALL_PREFIX=$P must start with /" >&2; exit 2 ;;
esac

label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
check() { # what name
	if ! printf '%s\n' "$2" | grep -Eq "$label"; then
		echo "$0: $1 name '$2' must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'" >&2
		exit 2
	fi
}

# ctl runs one etcdctl command (or prints it with -n). "already exists" is
# not an error, so the script can be run again.
ctl() {
	if [ $dry -eq 1 ]; then
		echo "etcdctl $*"
		return
	fi
	if ! out=$("$ETCDCTL" "$@" 2>&1); then
		case $out in
		*"already exists"*) echo "etcdctl $*: exists, kept" ;;
		*) echo "$0: etcdctl $* failed: $out" >&2; exit 1 ;;
		esac
	else
		echo "etcdctl $*: ok"
	fi
}

for a in "$@"; do
	case $a in
	*[!a-z0-9:,-]* | :* | "")
		echo "$0: '$a' is not HOST or HOST:SERVICE,SERVICE (lower-case DNS labels)" >&2
		exit 2
		;;
	esac
done

# Hosts in byte order, like the Go plan.
hosts=$(for a in "$@"; do printf '%s\n' "$a"; done | LC_ALL=C sort -t: -k1,1)
names=$(printf '%s\n' "$hosts" | sed 's/:.*//')
dup=$(printf '%s\n' "$names" | LC_ALL=C uniq -d | head -n 1)
if [ -n "$dup" ]; then
	echo "$0: host $dup is listed twice" >&2
	exit 2
fi
for h in $names; do
	check host "$h"
	if [ "$h" = rollcall-dns ]; then
		echo "$0: host name rollcall-dns is the DNS server's user: rename the host" >&2
		exit 2
	fi
done

ctl role add rollcall-reader
ctl role grant-permission --prefix=true rollcall-reader read "$P/"
for a in $hosts; do
	h=${a%%:*}
	svcs=
	case $a in *:*) svcs=$(printf '%s\n' "${a#*:}" | tr ',' '\n' | sed '/^$/d' | LC_ALL=C sort -u) ;; esac
	for s in $svcs; do check service "$s"; done
	ctl role add "rollcall-host-$h"
	ctl role grant-permission --prefix=true "rollcall-host-$h" readwrite "$P/hosts/$h/"
	for s in $svcs; do
		ctl role grant-permission --prefix=true "rollcall-host-$h" readwrite "$P/elections/$s/"
	done
done
for h in $names; do
	ctl user add --no-password "$h"
	ctl user grant-role "$h" "rollcall-host-$h"
	ctl user grant-role "$h" rollcall-reader
done
ctl user add --no-password rollcall-dns
ctl user grant-role rollcall-dns rollcall-reader

if [ $auth -eq 1 ]; then
	ctl user add --no-password root
	ctl user grant-role root root
	ctl auth enable
fi
