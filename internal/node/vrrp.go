package node

import (
	"fmt"
	"strings"

	"ulb/config"
	"ulb/router"
	"ulb/router/control"
	"ulb/vrrp"
)

// publishVRRP publishes every VRRP transition of r on events.
func publishVRRP(r *router.Router, events *control.Events) {
	r.OnVRRPEvent(func(ev router.VRRPEvent) {
		e := control.Event{Time: ev.Time, Kind: control.EventVRRP, Name: ev.Instance,
			From: stateName(ev.From), To: stateName(ev.To)}
		for _, in := range r.VRRPInfo() {
			if in.Name == ev.Instance {
				if in.Master.IsValid() {
					e.Master = in.Master.String()
				}
				e.Priority = int(in.Priority)
				if in.Fault {
					e.Reason = faultReason
				}
			}
		}
		events.Publish(e)
	})
}

// faultReason is what show-router and events say of an instance in FAULT.
const faultReason = "tracking reports a failure"

// registerVRRP installs show-router and the event stream.
func registerVRRP(srv *control.Server, s Sources) {
	srv.HandleStream(control.VerbWatch, s.Events.Watch)
	handle(srv, control.VerbShowRouter, func(a control.ShowRouterArgs) (any, error) {
		out := []control.RouterInfo{}
		if s.VRRP != nil {
			for _, in := range s.VRRP.VRRPInfo() {
				if a.Name != "" && in.Name != a.Name {
					continue
				}
				out = append(out, routerInfo(in, s.VRRP.VRRPPort(in.Name)))
			}
		}
		if s.Current != nil {
			for _, v := range s.Current().VRRP {
				if !v.Enabled && (a.Name == "" || v.Name == a.Name) {
					out = append(out, disabledRouterInfo(v))
				}
			}
		}
		if a.Name != "" && len(out) == 0 {
			return nil, fmt.Errorf("no vrrp instance %q", a.Name)
		}
		return out, nil
	})
}

func routerInfo(in vrrp.Info, port string) control.RouterInfo {
	ri := control.RouterInfo{
		Name:                in.Name,
		VRID:                int(in.VRID),
		Port:                port,
		Family:              control.FamilyIPv4,
		Version:             int(in.Version),
		Priority:            int(in.BasePriority),
		EffectivePriority:   int(in.Priority),
		AdverInterval:       in.Interval.Milliseconds(),
		MasterAdverInterval: in.MasterAdverInterval.Milliseconds(),
		Preempt:             in.Preempt,
		PreemptDelay:        in.PreemptDelay.Milliseconds(),
		Accept:              in.Accept,
		State:               stateName(in.State),
		VMAC:                in.VirtualMAC.String(),
		SyncGroup:           in.SyncGroup,
		Counters: control.VRRPCounters{
			AdvertsSent:     in.Counters.AdvertsSent,
			AdvertsReceived: in.Counters.AdvertsReceived,
			Transitions:     in.Counters.Transitions,
			BecameMaster:    in.Counters.BecameMaster,
			LastTransition:  in.Counters.LastTransition,
			Drops:           map[string]uint64{},
		},
	}
	if in.IPv6 {
		ri.Family = control.FamilyIPv6
	}
	if in.Fault {
		ri.Fault = faultReason
	}
	if in.Master.IsValid() {
		ri.Master = in.Master.String()
		ri.MasterPriority = int(in.MasterPriority)
	}
	for _, a := range in.Addresses {
		ri.Addresses = append(ri.Addresses, a.String())
	}
	if len(in.Links) > 1 {
		for i, l := range in.Links {
			rl := control.RouterLink{Port: l.Name, AdvertsSent: l.AdvertsSent, AdvertsReceived: l.AdvertsReceived,
				Drops: l.Drops, LastAdvert: l.LastAdvert}
			if i == 0 {
				rl.Port, rl.Source = port, in.Primary.String()
			} else if i-1 < len(in.LinkPrimaries) {
				rl.Source = in.LinkPrimaries[i-1].String()
			}
			if l.LastFrom.IsValid() {
				rl.LastFrom = l.LastFrom.String()
			}
			ri.Links = append(ri.Links, rl)
		}
	}
	for reason, n := range in.Counters.Drops {
		if n != 0 {
			ri.Counters.Drops[vrrp.DropReason(reason).String()] = n
		}
	}
	return ri
}

// disabledRouterInfo describes an instance that is configured but disabled.
func disabledRouterInfo(v config.VRRP) control.RouterInfo {
	ri := control.RouterInfo{Name: v.Name, VRID: int(v.VRID), Port: v.Port, Family: control.FamilyIPv4,
		Version: v.Version, Priority: v.Priority, EffectivePriority: v.Priority,
		AdverInterval: v.Interval.Milliseconds(), MasterAdverInterval: v.Interval.Milliseconds(),
		Preempt: v.Preempt, PreemptDelay: v.PreemptDelay.Milliseconds(), Accept: v.Accept,
		State: control.RouterDisabled, SyncGroup: v.SyncGroup,
		Counters: control.VRRPCounters{Drops: map[string]uint64{}}}
	for _, a := range v.Addresses {
		ri.Addresses = append(ri.Addresses, a.Addr().String())
		if a.Addr().Is6() {
			ri.Family = control.FamilyIPv6
		}
	}
	return ri
}

// stateName is the control socket's spelling of a VRRP state.
func stateName(s vrrp.State) string { return strings.ToLower(s.String()) }
