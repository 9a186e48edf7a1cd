// Package nft is Tandem's nftables data plane: an lvs.Kernel that programs
// virtual services as nftables rules, for kernels without IPVS.
//
// # Tables
//
// Everything lives in tables of its own (TableName), created by the first
// Apply and deleted whole by Flush and Close; nothing else in the ruleset
// is read or touched. NAT services are in `ip tandem` and `ip6 tandem`,
// each with two base chains on the prerouting hook:
//
//	nat_pre  nat, priority dstnat (-100): NAT services, first packet of a connection
//	account  filter, priority -99: per-real-server packet counters for NAT
//
// DR services of both families are in `netdev tandem`, dispatched from one
// base chain per interface that reaches some DR real server (see dr.go):
//
//	in_<ifindex>    filter, hook ingress, device <interface>, priority -500:
//	                frames for this host, not from its own MAC, to dispatch4/6
//	dispatch4/6     only for local addresses (fib daddr type local), then a
//	                verdict map protocol . VIP . port -> goto svc_n
//
// Per NAT service named n (objName: "tcp_10.0.0.1_80", "fwm_42"), in its
// table (DR services share a registry map and a slot set instead, and
// their svc_n counts and forwards, ending in a fallback chain shared by
// the services of equal pools: see dr.go):
//
//	reg_n        registry set: the service and its real servers as element comments
//	svc_n        the scheduler: persistence lookup, then slot lookup, then drop
//	slots_n      verdict map slot -> goto rs_n_<id>
//	rs_n_<id>    one real server: counter, persistence update, dnat
//	live_n       NAT with persistence: verdict map id -> goto rs_n_<id>, servers with slots
//	persist_n    NAT with persistence: timed dynamic map client/bits -> id
//	acct_n       NAT: one rule per real server, counting into pkts_n_<id>
//	pkts_n_<id>  named counter: packets and bytes from clients to the server
//	conns_n_<id> named counter (NAT): connections scheduled to the server
//
// The NAT dispatch chains hold one rule per service (protocol, VIP, port,
// or firewall mark) that jumps to svc_n, so every packet is matched
// against each NAT service in turn, which keepalived configurations keep
// few; DR dispatches with one map lookup whatever their number.
//
// # Transactions
//
// A plan (Apply, lvs.Kernel) holds one lvs.Batch per service, and each
// batch is one rebuild of its service, committed whole or not at all: a
// batch with an op the backend refuses commits nothing of the service.
// For NAT that is a single
// nf_tables transaction (one google/nftables Flush, atomic in the kernel):
// flush the service's chains and maps, delete the objects the new
// state no longer has, add the new ones, refill. Packets see the old
// service or the new one, never a half-built state. Counters and the
// persistence map are kept across rebuilds (adding an existing object is a
// no-op), so a weight change neither resets statistics nor moves
// persistent clients that stay valid. The dispatch chains are rebuilt in
// the same transaction only when a service is added or deleted.
//
// DR commits a chunk of services in one transaction (commitDR), sent as
// an nfnetlink batch of our own because google/nftables (v0.3.0) cannot
// send a `fwd` expression: its expr.Any has unexported methods, so no
// expression of ours can go through AddRule. The batch is what
// google/nftables queues for the chunk (capture), with each service's
// chain (chainMsgs: create, flush, refill; fwd encoded by hand, the other
// expressions by expr.Marshal) in the middle, in an order where nothing
// is referenced before it exists or deleted while referenced. It deletes
// every object of the service that the kernel has and the new state
// lacks, so orphans of an older version's failed commit go with the
// service's next commit (or Flush), and the fallback chains no service
// goes to. Only its last message asks for an acknowledgement (send): the
// kernel reports refused messages and failed commits anyway.
//
// # Restart
//
// The registry is the source of truth: Services and Dests read it back
// from the kernel, and every other object is a function of it, so a
// process starting after a crash finds its services, reconciles them
// without a single change if the configuration is the same, and knows
// exactly what to delete otherwise.
//
// # Forwarding methods
//
// NAT: `dnat to` the real server from the nat hook; conntrack keeps the
// connection there and undoes the translation on replies. Client addresses
// are preserved (no masquerade), so real servers must route replies back
// through the director, as with LVS-NAT.
//
// DR: `fwd ip to <rip> device <dev>` (`fwd ip6 to` for IPv6) from a netdev
// ingress chain. fwd looks the real server up in the neighbour table
// (resolving it if needed) and transmits the packet from the egress device
// with the server's MAC as destination: the MAC rewrite of LVS-DR, which
// works with real servers holding the VIP on lo. The packet is stolen, so
// it never reaches conntrack or the director's stack; fwd decrements its
// TTL (hop limit). The egress device is the interface of the route to the
// real server, which must be on a connected subnet; it is resolved when the
// service is rebuilt, and the service's ingress chains sit on those same
// interfaces: as in LVS-DR, clients' packets for the VIP are expected on
// the real servers' segment. Packets for the VIP that arrive on another
// interface go to the director's own stack; while no real server has a
// positive weight the service drops them. Only frames addressed to this
// host (pkttype host), not sent by itself, for a local address (the VIP is
// held: IPVS sees nothing else) are forwarded, so a switch's flooding and
// a VRRP backup forward nothing. There is no conntrack, so flows are hashed
// (see slots for the schedulers):
// jhash(saddr . sport) by default, and with persistence jhash of the client
// address masked to the persistence granularity only. The Maglev tables
// depend only on the set of real servers and weights, so two directors
// send a flow to the same server. A flow table (flows.go) keeps
// established flows, and with persistence clients, on their server when
// the table changes; only new flows move. An inhibited (weight-0) or
// removed server's flows move at once, as DR has no connection state to
// let them finish.
//
// TUN is not supported (a clear error naming the service): nftables has no
// IP-in-IP encapsulation. Neither are one-packet scheduling (ops), DR with
// firewall-mark services (no rule can set a mark before the netdev
// ingress hook), nor services
// mixing forwarding methods. Upper and lower connection thresholds are
// stored and reported but not enforced. IPVS's persistence engines and
// connection timeouts (keepalived's persistence_engine and lvs_timeouts)
// have no nftables counterpart here: the daemon warns that it ignores
// them.
//
// # Persistence (NAT)
//
// persistence_timeout T: svc_n looks the client address, masked to the
// persistence granularity, up in persist_n and jumps to that server if it
// still has slots (via live_n); otherwise it deletes the entry and
// schedules; the chosen rs_n_<id> chain does
// `update @persist_n { ip saddr & mask timeout Ts : id }`, which also
// refreshes the timeout on each new connection of the client. Unlike IPVS,
// a client whose server was set to weight 0 is rescheduled on its next
// connection (its established connections continue under conntrack).
package nft
