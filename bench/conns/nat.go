package main

import (
	"context"

	"tandem/internal/ctsync"
	"tandem/internal/lab"
)

// natMode is NAT through nftables with conntrack_sync: lab.NATPairSpec's
// two directors (the VIP outside, the real servers' gateway inside, both
// floating), lab.NATPairConf at advert_int 0.1, conntrackd replicating the
// master's connection tracking to the backup over the directors' own
// link. The crash waits until the backup's conntrackd holds every
// connection.
func natMode() mode {
	return mode{
		name:   "nat-nft",
		spec:   lab.NATPairSpec(),
		client: lab.NATPairClient.Name,
		vip:    lab.NATPairVIP,
		reals:  lab.NATPairReals,
		vsName: lab.NATPairVIP.String(),
		conf:   lab.NATPairConf{Sync: true}.Conf,
		args:   []string{"--dataplane", "nft"},
		needs:  "conntrackd",
		synced: func(ctx context.Context, l *lab.Lab, socket string, n int) bool {
			got, err := l.ConntrackdFlows(ctx, "dir2", ctsync.FilesFor(socket).Conf, lab.NATPairVIP.Port())
			return err == nil && got >= n
		},
	}
}

// natControlMode is natMode without conntrack_sync: the new master has
// no entry for the connections, schedules their next segments afresh and
// does not rewrite the real servers' replies, so connections break.
func natControlMode() mode {
	m := natMode()
	m.name, m.control = "nat-nft-control", true
	m.conf = lab.NATPairConf{}.Conf
	m.synced, m.needs = nil, ""
	return m
}
