// Package ipvs is Tandem's kernel IPVS data plane: an lvs.Kernel that
// programs virtual services into the Linux IP Virtual Server over generic
// netlink (github.com/cloudflare/ipvs, pinned at v0.12.0).
//
// # Use
//
//	k, err := ipvs.New()                    // in the calling thread's netns
//	if errors.Is(err, ipvs.ErrUnavailable) { ... } // no IPVS: say so, or use nft
//	r := lvs.NewReconciler(k, k.Owns)
//	rep, err := r.Reconcile(ctx, desired)
//	stats, err := k.Stats(key)             // ActiveConn, InActConn, packets, bytes
//	all, err := k.Counters()               // every service's (lvs.Kernel)
//	err = k.Close()                        // removes Tandem's services only
//
// New fails at start, in one line, on a kernel without IPVS ("kernel IPVS
// is not available (no /proc/net/ip_vs, no IPVS generic netlink family):
// load the ip_vs module (modprobe ip_vs) or use --dataplane nft"), and
// without CAP_NET_ADMIN, which every IPVS command needs, reads included. It
// never loads modules itself.
//
// # Mapping
//
// Everything lvs.Service and lvs.Dest hold maps onto an IPVS attribute:
// the scheduler name as is (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf
// mh, and twos on Linux 6.2+; the kernel loads ip_vs_<name> on demand, and
// a missing module is reported as such rather than as ENOENT); persistence
// as IP_VS_SVC_F_PERSISTENT plus the timeout in seconds and the netmask
// (an IPv4 mask, or an IPv6 prefix length); ops as IP_VS_SVC_F_ONEPACKET;
// sh-fallback/mh-fallback as IP_VS_SVC_F_SCHED1 and sh-port/mh-port as
// SCHED2 (the kernel shares those bits between sh and mh); NAT, DR and TUN
// as the per-destination forwarding methods Masq, Route and Tunnel, a TUN
// server's encapsulation (lvs.Dest.Tunnel: IPIP, GUE to a UDP port, GRE,
// with a checksum option) as IPVS_DEST_ATTR_TUN_TYPE, _TUN_PORT and
// _TUN_FLAGS (Linux 5.2, GRE 5.3), read back and updated in place like
// the weight; weights (0 inhibits a server) and the upper and lower connection
// thresholds as they are; a persistence engine (sip) as
// IPVS_SVC_ATTR_PE_NAME, which cloudflare/ipvs does not send: services
// with one are created and updated, and every service's engine is read
// back, on a generic netlink socket of the backend's own (genl.go), which
// also sends IPVS_CMD_FLUSH for FlushAll (keepalived's lvs_flush and
// lvs_flush_onstop: the whole table, everyone's services). SetTimeouts
// sets IPVS's connection timeouts (IPVS_CMD_SET_CONFIG, keepalived's
// lvs_timeouts), remembering the kernel's own, which Close puts back. Firewall-mark services, TCP, UDP and SCTP, IPv4
// and IPv6, and IPv6 real servers behind IPv4 services through a tunnel
// all work. Services and Dests read the kernel every
// time; the backend keeps no copy of the table.
//
// # Ownership
//
// IPVS has no field to tag a service with (no comment, no owner) and the
// table is shared with the operator's ipvsadm and other daemons. Marking
// services some other way (a reserved scheduler flag, a magic timeout)
// would change their behaviour or collide with someone else's, so the
// backend remembers instead: every service it creates is recorded, one
// key per line, in a state file (DefaultStateFile,
// /run/tandem/ipvs-services; WithStateFile changes it) before the create
// is sent, and forgotten after the delete. Kernel.Owns is the reconciler's owns
// predicate. A process restarted after a crash loads the file and removes
// exactly the services its predecessor made that the configuration no
// longer wants; services made by hand are reported in lvs.Report.Foreign
// and never touched. /run is a tmpfs, so the record lives exactly as long
// as the kernel's table does. Recorded services that disappear from the
// kernel (deleted by hand) are forgotten by the next Services, so a later
// hand-made service under the same key is not taken for Tandem's. Services
// that were already in the kernel and are adopted because the
// configuration names them are the reconciler's in-memory claim, as
// lvs.Reconciler documents; they are not recorded, so after a crash they
// are only removed if the new configuration still names them and later
// drops them.
//
// # Counters
//
// Stats reads ipvsadm's ActiveConn, InActConn and PersistConn and the
// 64-bit connection, packet and byte counters per real server. The kernel
// folds its per-CPU counters into the reported ones from the rate
// estimator's timer, every 2 s, so fresh traffic shows up within 2 s. A
// real server deleted and added back within a few minutes comes back from
// IPVS's trash list with its old counters. Counters (lvs.Kernel, what
// `tandem status` and `tandem lvs list` show) reads them for every service,
// one dump of real servers per service.
//
// # Batches
//
// IPVS has no transactions: Apply (lvs.Kernel) sends each op of the plan
// as one netlink request, in order, and stops at the first the kernel
// refuses, which may be inside a service's batch; the reconciler's order
// (adds before deletes) is what keeps a pool from draining meanwhile. The
// context is checked between requests.
//
// # Sync daemons
//
// Syncer starts, stops and lists IPVS's connection-sync daemons (ipvsadm
// --start-daemon, --stop-daemon, -L --daemon) with IPVS_CMD_NEW_DAEMON,
// IPVS_CMD_DEL_DAEMON and IPVS_CMD_GET_DAEMON, which cloudflare/ipvs does
// not have, on a generic netlink socket of its own. The master daemon
// multicasts the connections IPVS schedules (as they become established,
// and again every sync_period packets); the backup daemon enters them into
// its own table, so that a director taking over keeps them on their real
// servers. The kernel runs one of each per namespace; settings left zero
// get the kernel's defaults (UDP port 8848, TTL 1, group 224.0.0.81,
// payload from the interface's MTU). The daemon package decides which runs
// (lvs_sync_daemon follows a VRRP instance). Linux sends no answer to the
// stop of a daemon whose thread has not run yet (started a moment before:
// kthread_stop's -EINTR, for which netlink sends no ack; 3 of 10 quick
// start-stop cycles under TCG): Stop waits syncTimeout (3 s) for an
// answer, then asks the kernel whether the daemon still runs.
//
// # Tests
//
// TestApplyPerOp and TestCounters run everywhere, on a fake ipvs.Client
// with IPVS's answers. The tests that need IPVS create network namespaces of their own (through
// internal/lab) and program IPVS only there, so they never change the
// caller's table. This machine's kernel and CI's have no IPVS: there they
// skip with New's one-line reason, and test/vm runs them for real in a
// Debian kernel under qemu (see that package's documentation for the
// harness, the Debian packages CI installs, and measured times):
//
//	sudo go test ./test/vm/ -v
//
// TestSyncer* check the daemon messages byte by byte against a fake
// generic netlink peer (no kernel). In the VM, TestSyncDaemonReplicatesConnections
// runs the master daemon on one director and the backup on another and
// finds the client's connections through the first (DR, held open) in the
// second's /proc/net/ip_vs_conn within ~2.2 s (the master flushes every
// 2 s), reads the daemons back against ipvsadm -L --daemon, stops daemons
// right after starting them, and swaps them as a failover does.
// TestSyncDaemonFailover runs two tandems (the binary test/vm puts in the
// guest, TANDEM_BIN) with lvs_sync_daemon following their VRRP instance:
// a client's connection through the master goes on through the backup
// after the master's SIGTERM (without the sync daemon the backup resets
// it), and the stopped tandem leaves no sync daemon behind. In the VM they also check: programming every attribute above through the
// lvs.Reconciler and reading it back both through the backend and by
// parsing Debian's `ipvsadm -Ln` (and `-Ln --thresholds`, `-Ln
// --tun-info`); that a second reconcile sends nothing; in-place updates
// (a real server's tunnel from GUE to GRE among them); that services made with
// ipvsadm survive reconciles, a simulated crash and restart, and Close;
// every scheduler name the kernel has (twos must fail naming its module on
// Linux 6.1); IPv4 NAT, IPv6 NAT and IPv4 DR forwarding between namespaces
// (client, director, two real servers on bridges, a tiny TCP server in
// each) reaching both real servers in rr order, and IPv4 TUN forwarding
// (TestTUNForwarding) to real servers on another subnet behind a router,
// one decapsulating IPIP and one GUE with the UDP checksum, prepared (and
// afterwards undone) by internal/realserver as `tandem realserver up
// --tun` does; IPv6 persistence with a /64
// granularity keeping a client on one server; inhibition by weight 0;
// adoption by a restarted process without a change; the SIP persistence
// engine (ip_vs_pe_sip) set, read back, shown by ipvsadm and dropped in
// place, and an unknown one named; connection timeouts set and put back
// (ipvsadm -L --timeout); FlushAll emptying the table, a service made
// with ipvsadm included; and the counters after
// the traffic (connections, packets, bytes, replies for NAT, one held
// connection as ActiveConn, closed ones as InActConn).
package ipvs
