package config

// resolveCheckerLogAll gives every checker the global
// checker_log_all_failures as its log_all_failures (keepalived.conf(5):
// the global sets the checkers' default). A checker's own
// "log_all_failures off" does not override a global on: the model keeps
// no unset state for it.
func resolveCheckerLogAll(cfg *Config) {
	if !cfg.Global.CheckerLogAll {
		return
	}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, c := range rs.Checkers {
				c.LogAll = true
			}
		}
	}
}
