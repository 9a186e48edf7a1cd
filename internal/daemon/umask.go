package daemon

import (
	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// applyUmask sets the process's file-creation mask from cfg: its umask, or
// keepalived's default IWGRP|IWOTH (keepalived.conf(5) umask; keepalived
// sets it at start and again when a reload reads the keyword). It bounds
// the modes of the files Tandem creates: notify FIFOs, state dumps, the
// status socket.
func applyUmask(cfg *config.Config) {
	m := uint32(config.DefaultUmask)
	if cfg.Global.Umask != nil {
		m = *cfg.Global.Umask
	}
	unix.Umask(int(m))
}
