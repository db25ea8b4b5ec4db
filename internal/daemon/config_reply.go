package daemon

import (
	"sort"

	"github.com/palisade-project/palisade/internal/control"
)

// configReply answers the config verb: the configuration directory and
// every running jail's filter and ports, for the hardening commands.
func (d *Daemon) configReply() control.ConfigReply {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := control.ConfigReply{ConfigDir: d.cfg.Dir, Jails: []control.JailConfig{}}
	for _, r := range d.jails {
		j := r.Plan().Jail
		jc := control.JailConfig{Name: j.Name, Filter: j.Filter.Name, Port: j.PortSpec, Protocol: j.Protocol, Where: j.Where, Ports: []control.PortRange{}}
		for _, p := range j.Ports {
			jc.Ports = append(jc.Ports, control.PortRange{From: p.From, To: p.To})
		}
		rep.Jails = append(rep.Jails, jc)
	}
	sort.Slice(rep.Jails, func(a, b int) bool { return rep.Jails[a].Name < rep.Jails[b].Name })
	return rep
}
