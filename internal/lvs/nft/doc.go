// Package nft is Tandem's nftables data plane: an lvs.Kernel that programs
// virtual services as nftables rules, for kernels without IPVS.
//
// # Tables
//
// Everything lives in two tables of its own, `ip tandem` and `ip6 tandem`
// (TableName), created by the first Apply and deleted whole by Flush and
// Close; nothing else in the ruleset is read or touched. Each holds three
// base chains, all on the prerouting hook:
//
//	dr_pre   filter, priority raw (-300): DR services, before conntrack
//	nat_pre  nat, priority dstnat (-100): NAT services, first packet of a connection
//	account  filter, priority -99: per-real-server packet counters for NAT
//
// and, per service named n (objName: "tcp_10.0.0.1_80", "fwm_42"):
//
//	reg_n        registry set: the service and its real servers as element comments
//	svc_n        the scheduler: persistence lookup, then slot lookup, then drop
//	slots_n      verdict map slot -> goto rs_n_<id>
//	rs_n_<id>    one real server: counter, persistence update, dnat (NAT) or dup+drop (DR)
//	live_n       NAT with persistence: verdict map id -> goto rs_n_<id>, servers with slots
//	persist_n    NAT with persistence: timed dynamic map client/bits -> id
//	acct_n       NAT: one rule per real server, counting into pkts_n_<id>
//	pkts_n_<id>  named counter: packets and bytes from clients to the server
//	conns_n_<id> named counter (NAT): connections scheduled to the server
//
// The dispatch chains hold one rule per service (protocol, VIP, port, or
// firewall mark) that jumps to svc_n; they are linear in the number of
// services, which keepalived configurations keep small.
//
// # Transactions
//
// Every Apply rebuilds the one service it concerns in a single nf_tables
// transaction (one google/nftables Flush, atomic in the kernel): flush the
// service's chains and maps, delete the objects the new state no longer
// has, add the new ones, refill. Packets see the old service or the new
// one, never a half-built state. Counters and the persistence map are
// kept across rebuilds (adding an existing object is a no-op), so a weight
// change neither resets statistics nor moves persistent clients that stay
// valid. The dispatch chains are rebuilt in the same transaction only when
// a service is added or deleted.
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
// DR: google/nftables (v0.3.0) has no `fwd` expression, so instead of a
// netdev ingress `fwd ip to <rip> device <dev>` DR uses `dup to <rip>
// device <dev>` followed by `drop` in the raw-priority prerouting chain:
// the copy is routed with the real server as next hop, which is the MAC
// rewrite of LVS-DR (destination MAC from the neighbour table, source MAC
// of the egress device), and the original never reaches conntrack or the
// director's stack. The cost is one packet copy per packet. The egress
// device is the interface of the route to the real server, which must be on
// a connected subnet; it is resolved when the service is rebuilt. There is
// no conntrack, so flows are hashed (see slots for the schedulers):
// jhash(saddr . sport) by default, and with persistence jhash of the client
// address masked to the persistence granularity only, which keeps a client
// on one server for as long as the pool does not change, with no timeout.
// Changing the pool moves only the flows of the slots that change owner
// (Maglev); an inhibited (weight-0) server's flows move at once, as DR has
// no connection state to let them finish.
//
// TUN is not supported (a clear error naming the service): nftables has no
// IP-in-IP encapsulation. Neither are one-packet scheduling (ops), DR with
// firewall-mark services (marks are set after the raw hook), nor services
// mixing forwarding methods. Upper and lower connection thresholds are
// stored and reported but not enforced.
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
