package config

// unsupported names, per block, the keywords keepalived knows that Tandem
// does not implement, with why; the parser warns about them by name instead
// of dropping them silently (DESIGN.md, principle 3). The full vocabulary
// is shared/corpus/keepalived-keywords.txt; vocab_test.go checks that every
// keyword in it is either implemented or listed here.
var unsupported = map[string]map[string]string{}

// Reasons, shared by many keywords.
const (
	whyProcess   = "keepalived process and scheduling tuning; Tandem is one Go process"
	whySNMP      = "SNMP and D-Bus are not implemented; use the status API and /metrics"
	whyNetlink   = "netlink buffer tuning"
	whyNFTIPVS   = "keepalived's nftables fwmarks for IPVS virtual_server_group; Tandem programs each group member as its own service, which carries the same traffic"
	whyVMACAddr  = "a VMAC per virtual address (use_vmac_addr) is not implemented; use_vmac is"
	whyVMACGarp  = "gratuitous ARPs on extra interfaces are not implemented; use_vmac's GARPs go out of the VMAC"
	whyBFDProc   = "keepalived's choice of which of its processes hear a session; Tandem is one process, and every user of a session hears it"
	whyNamespace = "the data plane runs in net_namespace (or Tandem's own namespace); a separate IPVS namespace is not implemented"
	whyIPSets    = "no effect: Tandem uses no ipsets (its firewall rules are nftables, which are namespace-aware)"
	whyReload    = "keepalived's reload and config-dump machinery; Tandem reloads by diff"
	whyDump      = "use tandem status --json and the status API"
	whyRegex     = "PCRE matching options are not implemented (regex itself is, with Go's RE2)"
	whySSLCtx    = "client certificates for SSL_GET are not implemented"
	whyAuthExt   = "keepalived's experimental authentication extensions are not implemented"
	whyMisc      = "not implemented"
)

func init() {
	add := func(ctx, why string, kws ...string) {
		if unsupported[ctx] == nil {
			unsupported[ctx] = map[string]string{}
		}
		for _, k := range kws {
			unsupported[ctx][k] = why
		}
	}
	root := "keepalived.conf"
	add(root, whyNamespace, "net_namespace_ipvs")
	add(root, whyIPSets, "namespace_with_ipsets")
	add(root, whyProcess, "use_pid_dir", "instance", "child_wait_time")
	add(root, whyMisc, "linkbeat_use_polling", "linkbeat_interfaces", "interface_up_down_delays")
	add("bfd_instance", whyBFDProc, "vrrp", "checker")
	add(root, whySSLCtx, "SSL")
	// The children of root blocks that are ignored as a whole: never
	// dispatched, named here so that the vocabulary is complete.
	add("SSL", whySSLCtx, "password", "ca", "certificate", "key")

	g := "global_defs"
	add(g, whyProcess, "process_names", "process_name", "vrrp_process_name", "checker_process_name",
		"lvs_process_name", "bfd_process_name", "use_symlink_paths", "set_supplementary_groups",
		"checker_priority", "checker_no_swap", "checker_rt_priority",
		"checker_cpu_affinity", "checker_rlimit_rttime", "checker_rlimit_rtime",
		"random_seed", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "startup_script",
		"startup_script_timeout", "shutdown_script", "shutdown_script_timeout", "iproute_usr_dir", "iproute_etc_dir", "vrrp_delay_after_boot")
	add(g, whySNMP, "snmp_socket", "enable_traps", "enable_snmp_vrrp", "enable_snmp_keepalived",
		"enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_checker",
		"snmp_vs_stats_update_interval", "snmp_rs_stats_update_interval", "enable_dbus",
		"dbus_service_name", "dbus_no_interface_name")
	add(g, whyNetlink, "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force",
		"vrrp_netlink_monitor_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
		"process_monitor_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force",
		"lvs_netlink_monitor_rcv_bufs", "lvs_netlink_monitor_rcv_bufs_force")
	add(g, whyNFTIPVS, "nftables_ipvs", "nftables_ipvs_priority", "nftables_ipvs_start_fwmark")
	add(g, whyVMACAddr, "vmac_addr_prefix")
	add(g, whyVMACGarp, "vrrp_vmac_garp_intvl", "vrrp_garp_extra_if")
	add(g, whyReload, "reload_check_config", "reload_time_file", "reload_repeat", "reload_file",
		"include_check", "config_save_dir", "tmp_config_directory")
	add(g, whyDump, "data_use_instance", "json_version", "state_dump_file", "stats_dump_file", "json_dump_file")
	add(g, whyMisc, "linkbeat_use_polling", "disable_local_igmp", "rs_init_notifies", "no_checker_emails",
		"no_email_faults", "log_unknown_vrids", "vrrp_owner_ignore_adverts", "vrrp_down_timer_adverts",
		"vrrp_min_garp")

	in := "vrrp_instance"
	add(in, whyVMACAddr, "use_vmac_addr")
	add(in, whyVMACGarp, "vmac_garp_intvl", "garp_extra_if")
	add(in, whyMisc, "vrf", "track_src_ip", "debug", "kernel_rx_buf_size", "unicast_fault_no_peer",
		"old_unicast_checksum", "native_ipv6", "linkbeat_use_polling", "timer_expired_backup",
		"thread_timer_expired", "owner_ignore_adverts", "down_timer_adverts", "interfaces")
	add("authentication", whyAuthExt, "auth_hmac", "key", "active_key", "time_window", "anti_replay", "mode")

	vs := "virtual_server"
	add(vs, whySNMP, "snmp_name")
	add("real_server", whySNMP, "snmp_name")
	for _, c := range []CheckType{CheckHTTP, CheckSSL} {
		add(c.String(), whyRegex, "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack")
	}
	add("url", whyRegex, "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack")
}
