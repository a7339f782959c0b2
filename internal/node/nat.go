package node

import (
	"ulb/config"
	"ulb/router"
)

// natConfig translates [[autonat]] and [[nat]] into the router's NAT.
func natConfig(cfg *config.Config) router.NATConfig {
	var nc router.NATConfig
	for _, a := range cfg.AutoNAT {
		nc.AutoNAT = append(nc.AutoNAT, router.AutoNAT{From: a.From, Out: a.Out, Address: a.Address})
	}
	for _, s := range cfg.NAT {
		sn := router.StaticNAT{Public: s.Public.Addr(), Private: s.Private.Addr(),
			PublicPort: s.Public.Port(), PrivatePort: s.Private.Port(), Out: s.Out}
		if s.Protocol != "" { // a port forward; 1:1 mappings have none
			sn.Proto = s.Protocol.Number()
		}
		nc.Static = append(nc.Static, sn)
	}
	return nc
}
