#!/bin/sh
# mkcerts.sh: a private CA and every certificate a rollcall cluster needs,
# made with openssl. See deploy/certs.md for where each file goes.
#
#   deploy/mkcerts.sh OUTDIR
#
# Environment (the defaults match deploy/etcd/etcdN.yml):
#   MEMBERS  etcd members as NAME=IP, space-separated
#            (default "etcd1=10.0.0.1 etcd2=10.0.0.2 etcd3=10.0.0.3")
#   CLIENTS  client certificate CNs: the etcd users of deploy/rbac.sh
#            (default "root rollcall-dns host1 host2 host3")
#   DAYS     validity of leaf certificates (default 825); the CA gets 10 years
#
# Files in OUTDIR: ca.pem, ca-key.pem (keep the CA key offline), NAME.pem and
# NAME-key.pem per member (server and peer, valid for its IP, its name and
# loopback), CN.pem and CN-key.pem per client. Existing files are kept, so
# adding a host to CLIENTS and running again issues only the new certificate.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
MEMBERS=${MEMBERS:-"etcd1=10.0.0.1 etcd2=10.0.0.2 etcd3=10.0.0.3"}
CLIENTS=${CLIENTS:-"root rollcall-dns host1 host2 host3"}
DAYS=${DAYS:-825}
command -v openssl >/dev/null || { echo "$0: openssl is not installed" >&2; exit 1; }
mkdir -p "$out"
umask 077

key() { # file: an ECDSA P-256 key
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

if [ ! -f "$out/ca.pem" ]; then
	key "$out/ca-key.pem"
	openssl req -x509 -new -key "$out/ca-key.pem" -out "$out/ca.pem" -days 3650 \
		-subj "/CN=rollcall etcd CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
	echo "made $out/ca.pem"
fi

# issue NAME EXTENSIONS: a certificate for CN=NAME signed by the CA.
issue() {
	name=$1 ext=$2
	[ -f "$out/$name.pem" ] && { echo "kept $out/$name.pem"; return; }
	key "$out/$name-key.pem"
	openssl req -new -key "$out/$name-key.pem" -subj "/CN=$name" -out "$out/$name.csr"
	printf '%s\n' "$ext" >"$out/$name.ext"
	openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
		-CAcreateserial -days "$DAYS" -extfile "$out/$name.ext" -out "$out/$name.pem" 2>/dev/null
	rm -f "$out/$name.csr" "$out/$name.ext"
	echo "made $out/$name.pem"
}

for m in $MEMBERS; do
	name=${m%%=*} ip=${m#*=}
	if [ "$name" = "$m" ] || [ -z "$ip" ]; then
		echo "$0: member '$m' must be NAME=IP" >&2
		exit 2
	fi
	# Members serve clients and peers, and dial peers as clients.
	issue "$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$name,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:::1"
done
for c in $CLIENTS; do
	issue "$c" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
done
rm -f "$out/ca.srl"
