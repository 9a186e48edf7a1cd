package api

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes st as the table `tandem status` prints.
func WriteText(w io.Writer, st Status, now time.Time) error {
	if len(st.Instances) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "INSTANCE\tSTATE\tVRID\tINTERFACE\tPRIORITY\tMASTER\tVIPS\tSINCE\tDROPPED\tREASON\n")
		for _, in := range st.Instances {
			since := "-"
			if !in.Since.IsZero() {
				since = now.Sub(in.Since).Round(time.Second).String()
			}
			master := in.MasterIP
			if master == "" {
				master = "-"
			}
			iface := in.Interface
			if in.VMAC != "" {
				iface += " (vmac " + in.VMAC + ")"
			}
			reason := in.Reason
			if reason == "" {
				reason = "-"
			}
			state := in.State
			if !in.DrainingUntil.IsZero() {
				// Still forwarding for the VIPs, no longer announcing them.
				state += fmt.Sprintf(" (draining %s)", max(in.DrainingUntil.Sub(now), 0).Round(100*time.Millisecond))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", in.Name, state, in.VRID, iface,
				in.EffectivePriority, in.Priority, master, strings.Join(in.VIPs, ","), since, dropText(in.Dropped), reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if sd := st.SyncDaemon; sd != nil {
		writeSyncDaemon(w, sd)
	}
	if ct := st.Conntrackd; ct != nil {
		writeConntrackd(w, ct)
	}
	if err := writeBFD(w, st.BFD, now); err != nil {
		return err
	}
	if err := writeBGP(w, st.BGP, now); err != nil {
		return err
	}
	if len(st.VirtualServers) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nData plane: %s\n", st.Dataplane)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "VIRTUAL SERVER\tSCHED\tMETHOD\tQUORUM\tREAL SERVER\tWEIGHT\tHEALTHY\tCHECKERS\n")
	for _, vs := range st.VirtualServers {
		quorum := "ok"
		if !vs.QuorumOK {
			quorum = "lost"
		}
		if len(vs.RealServers) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\n", vs.Name, vs.Scheduler, vs.Method, quorum)
		}
		for i, rs := range vs.RealServers {
			name, sched, method, q := vs.Name, vs.Scheduler, vs.Method, quorum
			if i > 0 {
				name, sched, method, q = "", "", "", ""
			}
			var cks []string
			for _, c := range rs.Checkers {
				s := c.Type + "=" + c.LastResult
				if c.LastError != "" {
					s += " (" + c.LastError + ")"
				}
				cks = append(cks, s)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%d\t%d\t%t\t%s\n", name, sched, method, q, rs.IP, rs.Port, rs.Weight, rs.Healthy, strings.Join(cks, "; "))
		}
	}
	return tw.Flush()
}

func dropText(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

// writeConntrackd writes conntrackd's line: running or not (and why),
// its restarts, and the last command and its result.
func writeConntrackd(w io.Writer, ct *ConntrackdStatus) {
	state := "running"
	if !ct.Running {
		state = "not running"
	}
	fmt.Fprintf(w, "\nconntrackd: %s (following %s, %s, %d restarts)", state, ct.Follows, ct.Role, ct.Restarts)
	if ct.Error != "" {
		fmt.Fprintf(w, ": %s", ct.Error)
	}
	if ct.Command != "" {
		res := "ok"
		if ct.CommandError != "" {
			res = ct.CommandError
		}
		fmt.Fprintf(w, "; last command %s: %s", ct.Command, res)
	}
	fmt.Fprintln(w)
}

// writeSyncDaemon writes the sync daemon's line: which daemons the kernel
// runs, on what, following which instance, and why one is missing.
func writeSyncDaemon(w io.Writer, sd *SyncDaemonStatus) {
	running := "none running"
	if len(sd.Running) > 0 {
		running = strings.Join(sd.Running, " and ")
	}
	follows := "master and backup always"
	if sd.Instance != "" {
		follows = "following " + sd.Instance
	}
	fmt.Fprintf(w, "\nSync daemon: %s on %s (syncid %d, %s)", running, sd.Interface, sd.SyncID, follows)
	if sd.Error != "" {
		fmt.Fprintf(w, ": %s", sd.Error)
	}
	fmt.Fprintln(w)
}

// writeBFD writes the BFD sessions' table: state, detection time, flaps
// and packets.
func writeBFD(w io.Writer, bs []BFDSessionStatus, now time.Time) error {
	if len(bs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "BFD SESSION\tNEIGHBOR\tSTATE\tDETECTION\tFLAPS\tSINCE\tSENT/RECEIVED/DROPPED\n")
	for _, b := range bs {
		since := "-"
		if !b.LastChange.IsZero() {
			since = now.Sub(b.LastChange).Round(time.Second).String()
		}
		det := time.Duration(b.Detection * float64(time.Second)).Round(time.Microsecond)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d/%d/%d\n", b.Name, b.Neighbor, b.State, det, b.Flaps, since, b.Sent, b.Received, b.Dropped)
	}
	return tw.Flush()
}

// writeBGP writes the BGP speaker's sessions and VIPs.
func writeBGP(w io.Writer, b *BGPStatus, now time.Time) error {
	if b == nil {
		return nil
	}
	state := ""
	switch {
	case b.ShuttingDown:
		state = ", graceful shutdown"
	case b.Drained:
		state = ", drained (tandem drain --undo puts it back)"
	}
	fmt.Fprintf(w, "\nBGP: router id %s, AS %d%s\n", b.RouterID, b.LocalAS, state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "BGP NEIGHBOR\tAS\tSTATE\tSINCE\tSENT/RECEIVED\tLAST ERROR\n")
	for _, n := range b.Neighbors {
		since, last := "-", "-"
		if !n.Since.IsZero() {
			since = now.Sub(n.Since).Round(time.Second).String()
		}
		if n.LastError != "" {
			last = n.LastError
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d/%d\t%s\n", n.Address, n.RemoteAS, n.State, since, n.PrefixesSent, n.PrefixesReceived, last)
	}
	fmt.Fprintf(tw, "VIP\tROUTE\n")
	for _, v := range b.VIPs {
		route := "withdrawn"
		if v.Announced {
			route = "announced"
		}
		fmt.Fprintf(tw, "%s\t%s\n", v.VIP, route)
	}
	return tw.Flush()
}
