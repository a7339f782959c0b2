#!/bin/sh
# capture.sh regenerates the keepalived golden captures in this folder (run as root;
# needs keepalived, tcpdump and iproute2). Each capture runs Debian's keepalived as
# master in a network namespace, records its adverts on the peer end of a veth
# pair for five seconds, then stops keepalived with SIGTERM so that the
# last advert of the file is its priority-0 advert. Only documentation prefixes.
# keepalived 2.2.7 (Debian 12) sends VRRPv3 over IPv4 with the pseudo-header in
# the checksum and has no v3_checksum_as_v2 keyword yet, so there is no capture
# of the other variant.
#
# usage: capture.sh [OUTDIR [TAG]]: OUTDIR defaults to this folder; TAG (default: the
# shell's PID) makes the namespace names ulbt-vka-TAG-N and ulbt-vkb-TAG-N unique.
set -eu
out=$(cd "${1:-$(dirname "$0")}" && pwd)
tag=${2:-$$}
n=0
run() {
	name=$1
	conf=$2
	n=$((n + 1))
	a=ulbt-vka-$tag-$n
	b=ulbt-vkb-$tag-$n
	tmp=$(mktemp -d)
	ip netns add "$a"
	ip netns add "$b"
	trap 'ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$tmp"' EXIT
	ip link add vka netns "$a" type veth peer name vkb netns "$b"
	ip -n "$a" addr add 192.0.2.1/24 dev vka
	ip -n "$b" addr add 192.0.2.2/24 dev vkb
	ip -n "$a" link set vka up
	ip -n "$b" link set vkb up
	sleep 2 # IPv6 duplicate address detection of the link-local addresses
	printf '%s\n' "$conf" >"$tmp/keepalived.conf"
	ip netns exec "$b" tcpdump -U -i vkb -w "$tmp/out.pcap" 'ip proto 112 or ip6 proto 112' 2>/dev/null &
	tp=$!
	sleep 1
	ip netns exec "$a" keepalived -n -l --vrrp -f "$tmp/keepalived.conf" \
		-p "$tmp/k.pid" -r "$tmp/v.pid" >/dev/null 2>&1 &
	kp=$!
	sleep 5
	kill -TERM "$kp"
	wait "$kp" || true
	sleep 1
	kill "$tp"
	wait "$tp" || true
	cp "$tmp/out.pcap" "$out/keepalived-$name.pcap"
	ip netns del "$a"
	ip netns del "$b"
	rm -rf "$tmp"
	trap - EXIT
}
inst() { # version vrid priority advert_int addresses... [extra line]
	printf 'vrrp_instance v {\n version %s\n state MASTER\n interface vka\n virtual_router_id %s\n priority %s\n advert_int %s\n virtual_ipaddress {\n%s\n }\n%s\n}\n' "$@"
}
run v2-ipv4 "$(inst 2 51 150 1 '  192.0.2.100/24
  192.0.2.101/24' '')"
run v3-ipv4 "$(inst 3 51 150 1 '  192.0.2.100/24
  192.0.2.101/24' '')"
run v3-ipv6 "$(inst 3 52 200 0.5 '  2001:db8::100/64
  2001:db8::101/64' '')"
