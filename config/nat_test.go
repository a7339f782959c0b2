package config

import (
	"net/netip"
	"strings"
	"testing"
)

// natBase has an outside port (198.51.100.0/24), an inside one (203.0.113.0/24), and a
// rule; its last line is 19, so a section appended after a blank line starts at 21.
const natBase = `[[port]]
name = "outside"
device = "eth1"
address = ["198.51.100.10/24", "2001:db8:1::10/64"]

[[port]]
name = "inside"
device = "eth2"
address = ["203.0.113.10/24"]

[[servergroup]]
name = "web"
server = [{ address = "203.0.113.200", port = 80 }]

[[rule]]
name = "web"
vip = "198.51.100.100"
port = "80"
servergroup = "web"
`

func TestNAT(t *testing.T) {
	cfg, err := Parse("n.toml", []byte(natBase+`
[[autonat]]
from = ["203.0.113.0/24", "203.0.114.0/24"]
out = "outside"

[[autonat]]
from = "2001:db8:2::/64"
out = "outside"
address = "2001:db8:1::20"

[[nat]]
public = "198.51.100.50"
private = "203.0.113.201"

[[nat]]
public = "198.51.100.51:2222"
private = "203.0.113.202:22"
protocol = "TCP"

[[nat]]
public = "198.51.100.51:53"
private = "203.0.113.202:53"
protocol = "udp"
out = "outside"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AutoNAT) != 2 || cfg.AutoNAT[0].Out != "outside" || len(cfg.AutoNAT[0].From) != 2 || cfg.AutoNAT[0].Address.IsValid() ||
		cfg.AutoNAT[1].Address != netip.MustParseAddr("2001:db8:1::20") {
		t.Errorf("autonat %+v", cfg.AutoNAT)
	}
	if len(cfg.NAT) != 3 || cfg.NAT[0].Out != "outside" || cfg.NAT[0].Protocol != "" || cfg.NAT[1].Protocol != TCP ||
		cfg.NAT[1].Private != netip.MustParseAddrPort("203.0.113.202:22") || cfg.NAT[2].Protocol != UDP {
		t.Errorf("nat %+v", cfg.NAT)
	}
}

func TestNATErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[[autonat]]\nfrom = \"203.0.113.0/24\"\n", "n.toml:21: autonat #1 needs out = the outside port's name"},
		{"[[autonat]]\nout = \"outside\"\n", `n.toml:21: autonat through "outside" needs from = the inside networks`},
		{"[[autonat]]\nout = \"wan\"\nfrom = \"203.0.113.0/24\"\n", `n.toml:22: autonat #1: unknown port "wan" (ports: "outside", "inside")`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.1/24\"\n", `n.toml:23: autonat through "outside": from "203.0.113.1/24" has host bits set: did you mean "203.0.113.0/24"?`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"198.51.100.0/25\"\n", `n.toml:23: autonat through "outside": from 198.51.100.0/25 overlaps 198.51.100.0/24, a network of the outside port "outside" itself`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.0/24\"\naddress = \"192.0.2.9\"\n", `n.toml:24: autonat through "outside": address 192.0.2.9 is on no network of port "outside"`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.0/24\"\naddress = \"2001:db8:1::20\"\n", `n.toml:24: autonat through "outside": address 2001:db8:1::20 is IPv6 but from 203.0.113.0/24 is IPv4`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.0/24\"\naddress = \"198.51.100.100\"\n", `n.toml:24: autonat through "outside": address 198.51.100.100 is the VIP of rule "web"`},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.0/24\"\n\n[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.128/25\"\n", `n.toml:27: autonat through "outside": from 203.0.113.128/25 overlaps 203.0.113.0/24 of an earlier autonat`},
		{"[[nat]]\nprivate = \"203.0.113.201\"\n", "n.toml:21: nat #1 needs public = the public address"},
		{"[[nat]]\npublic = \"198.51.100.50\"\n", "n.toml:21: nat 198.51.100.50 needs private = the private address"},
		{"[[nat]]\npublic = \"198.51.100.10\"\nprivate = \"203.0.113.201\"\n", `n.toml:22: nat #1: public 198.51.100.10 is the router's own address on port "outside"`},
		{"[[nat]]\npublic = \"198.51.100.100\"\nprivate = \"203.0.113.201\"\n", `n.toml:22: nat #1: public 198.51.100.100 is the VIP of rule "web"`},
		{"[[nat]]\npublic = \"192.0.2.50\"\nprivate = \"203.0.113.201\"\n", "n.toml:22: nat 192.0.2.50: public 192.0.2.50 is on no port's network: give out = the port it is reached through"},
		{"[[nat]]\npublic = \"198.51.100.50:80\"\nprivate = \"203.0.113.201\"\n", "n.toml:23: nat 198.51.100.50:80: give a port on both public and private (a port forward) or on neither (a 1:1 mapping)"},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"2001:db8:2::1\"\n", "n.toml:23: nat 198.51.100.50: private 2001:db8:2::1 is IPv6 but public 198.51.100.50 is IPv4"},
		{"[[nat]]\npublic = \"198.51.100.50:80\"\nprivate = \"203.0.113.201:8080\"\n", "n.toml:21: nat 198.51.100.50:80: a port forward needs protocol = \"tcp\" or \"udp\""},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\nprotocol = \"tcp\"\n", "n.toml:24: nat 198.51.100.50: protocol belongs to a port forward"},
		{"[[nat]]\npublic = \"198.51.100.50:80\"\nprivate = \"203.0.113.201:80\"\nprotocol = \"sctp\"\n", `n.toml:24: nat 198.51.100.50:80: protocol "sctp": want tcp or udp`},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\nout = \"wan\"\n", `n.toml:24: nat 198.51.100.50: unknown port "wan"`},
		{"[[nat]]\npublic = \"198.51.100.50:0\"\nprivate = \"203.0.113.201\"\n", `n.toml:22: nat #1: public "198.51.100.50:0": port 0 cannot be mapped`},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\n\n[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.202\"\n", "n.toml:26: nat 198.51.100.50: mapped twice (first at line 22)"},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\n\n[[nat]]\npublic = \"198.51.100.51\"\nprivate = \"203.0.113.201\"\n", "n.toml:27: nat 198.51.100.51: 203.0.113.201 is the private address of another 1:1 mapping (line 23)"},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\n\n[[nat]]\npublic = \"198.51.100.50:22\"\nprivate = \"203.0.113.202:22\"\nprotocol = \"tcp\"\n", "n.toml:26: nat 198.51.100.50:22: 198.51.100.50 has a 1:1 mapping (line 22) that takes every port"},
		{"[[autonat]]\nout = \"outside\"\nfrom = \"203.0.113.0/24\"\naddress = \"198.51.100.50\"\n\n[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\n", `n.toml:27: nat #1: public 198.51.100.50 is the address of the autonat through "outside"`},
		{"[[nat]]\npublic = \"198.51.100.50\"\nprivate = \"203.0.113.201\"\nport = \"outside\"\n", `n.toml:24: unknown key "port" in [[nat]]`},
	} {
		_, err := Parse("n.toml", []byte(natBase+"\n"+tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.body, err, tc.want)
		}
	}
}
