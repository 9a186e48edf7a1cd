package daemon

import (
	"log/slog"

	"tandem/internal/config"
	"tandem/internal/notify"
	"tandem/internal/script"
)

// effects are what one configuration's global_defs say about acting
// outside Tandem: the identity its scripts run as (script_user,
// enable_script_security) and where its alerts are mailed (smtp_server,
// notification_email, ...). They are built once per configuration, at
// start and at each accepted reload, and the same value goes to every
// consumer: VRRP notifications, trackers, health checks (MISC_CHECK) and
// the balancer's alerts. So a reload changes them everywhere at once, and
// what a configuration warns about (a missing keepalived_script user) is
// said once for it, not once per consumer.
type effects struct {
	users  *script.Users
	mailer *notify.Mailer // nil: no smtp_server or no notification_email
	// fifos are the notify FIFOs, opened by run and kept by a reload
	// that does not change them (reloadFIFOs); nil writes nothing.
	fifos *notify.FIFOs
}

func newEffects(cfg *config.Config, log *slog.Logger) *effects {
	return &effects{users: script.NewUsers(&cfg.Global, log), mailer: notify.NewMailer(&cfg.Global, log)}
}
