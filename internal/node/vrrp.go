package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"ulb/router"
	"ulb/router/control"
	"ulb/vrrp"
)

// registerVRRP installs show-router and the event stream, and publishes every VRRP
// transition on it.
func registerVRRP(srv *control.Server, r *router.Router, events *control.Events) {
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
					e.Reason = "tracking reports a failure"
				}
			}
		}
		events.Publish(e)
	})
	srv.HandleStream(control.VerbWatch, events.Watch)
	srv.Handle(control.VerbShowRouter, func(_ context.Context, raw json.RawMessage) (any, error) {
		var args control.ShowRouterArgs
		if err := decodeArgs(raw, &args); err != nil {
			return nil, err
		}
		out := []control.RouterInfo{}
		for _, in := range r.VRRPInfo() {
			if args.Name != "" && in.Name != args.Name {
				continue
			}
			out = append(out, routerInfo(r, in))
		}
		if args.Name != "" && len(out) == 0 {
			return nil, fmt.Errorf("no vrrp instance %q", args.Name)
		}
		return out, nil
	})
}

func routerInfo(r *router.Router, in vrrp.Info) control.RouterInfo {
	ri := control.RouterInfo{
		Name:                in.Name,
		VRID:                int(in.VRID),
		Port:                r.VRRPPort(in.Name),
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
		ri.Fault = "tracking reports a failure"
	}
	if in.Master.IsValid() {
		ri.Master = in.Master.String()
		ri.MasterPriority = int(in.MasterPriority)
	}
	for _, a := range in.Addresses {
		ri.Addresses = append(ri.Addresses, a.String())
	}
	for reason, n := range in.Counters.Drops {
		if n != 0 {
			ri.Counters.Drops[vrrp.DropReason(reason).String()] = n
		}
	}
	return ri
}

// stateName is the control socket's spelling of a VRRP state.
func stateName(s vrrp.State) string { return strings.ToLower(s.String()) }
