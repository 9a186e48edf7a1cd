package script

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"tandem/internal/config"
)

// DefaultUser is the user scripts run as when neither the script nor
// global_defs names one, if it exists (keepalived.conf(5) script_user).
const DefaultUser = "keepalived_script"

// Users picks the identity the scripts of one configuration run as, as
// keepalived does (keepalived.conf(5) script_user and user; notify.c
// set_uid_gid, get_default_script_user): the script's own user and group if
// given, else global_defs script_user, else keepalived_script if that user
// exists, else this process's identity with a warning, which
// enable_script_security forbids. A group starting with ':' also sets the
// user's supplementary groups; otherwise they are cleared.
//
// The default is looked up once, when the first script that needs it is
// prepared, so a configuration without scripts never reads the user
// database: a minimal root filesystem may have none. A missing database
// (no /etc/passwd or /etc/group) has no users or groups in it.
type Users struct {
	user, group string // global_defs script_user
	security    bool
	log         *slog.Logger
	db          accounts

	once   sync.Once
	def    *syscall.Credential
	defErr error
}

// accounts is the user database: the system's, or a test's.
type accounts struct {
	lookupUser  func(name string) (*user.User, error)
	lookupGroup func(name string) (*user.Group, error)
	groupIDs    func(u *user.User) ([]string, error)
}

var systemAccounts = accounts{user.Lookup, user.LookupGroup, (*user.User).GroupIds}

// NewUsers returns the identities for the scripts configured under g
// (script_user, enable_script_security). It reads nothing yet; log gets the
// warning about a missing keepalived_script user (nil: discard).
func NewUsers(g *config.Global, log *slog.Logger) *Users {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Users{user: g.ScriptUser, group: g.ScriptGroup, security: g.EnableScriptSecurity, log: log, db: systemAccounts}
}

// Command returns the command that runs argv as the script's own user and
// group (its `user USER [GROUP]` keyword; empty when it has none), under
// enable_script_security.
func (u *Users) Command(argv []string, userName, group string) (*Command, error) {
	cred, err := u.Credential(userName, group)
	if err != nil {
		return nil, err
	}
	return &Command{Argv: argv, Cred: cred, Security: u.security}, nil
}

// Credential is the identity of a script with its own user and group
// (userName empty: none given). It returns nil when the script runs as this
// process.
func (u *Users) Credential(userName, group string) (*syscall.Credential, error) {
	if userName != "" {
		return u.lookup(userName, group)
	}
	u.once.Do(func() { u.def, u.defErr = u.defaultCredential() })
	return u.def, u.defErr
}

func (u *Users) defaultCredential() (*syscall.Credential, error) {
	if u.user != "" {
		return u.lookup(u.user, u.group)
	}
	cred, err := u.lookup(DefaultUser, "")
	var unknown user.UnknownUserError
	switch {
	case err == nil:
		return cred, nil
	case !errors.As(err, &unknown):
		return nil, err
	case u.security:
		return nil, fmt.Errorf("enable_script_security: no script_user set and user %s does not exist", DefaultUser)
	}
	// keepalived: "default user 'keepalived_script' for script execution
	// does not exist - please create."
	u.log.Warn("default script user does not exist: scripts run as this process; create it or set script_user",
		"user", DefaultUser, "uid", os.Getuid())
	return nil, nil
}

func (u *Users) lookup(userName, group string) (*syscall.Credential, error) {
	pw, err := u.db.lookupUser(userName)
	if errors.Is(err, fs.ErrNotExist) {
		// Go's own user lookup (the static binary's) fails to open a
		// missing /etc/passwd where libc finds no such user: the same.
		err = user.UnknownUserError(userName)
	}
	if err != nil {
		return nil, fmt.Errorf("script user %s: %w", userName, err)
	}
	uid, err := strconv.ParseUint(pw.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("script user %s: uid %q: %w", userName, pw.Uid, err)
	}
	gid, err := strconv.ParseUint(pw.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("script user %s: gid %q: %w", userName, pw.Gid, err)
	}
	group, supplementary := strings.CutPrefix(group, ":")
	if group != "" {
		gr, err := u.db.lookupGroup(group)
		if errors.Is(err, fs.ErrNotExist) {
			err = user.UnknownGroupError(group)
		}
		if err != nil {
			return nil, fmt.Errorf("script group %s: %w", group, err)
		}
		if gid, err = strconv.ParseUint(gr.Gid, 10, 32); err != nil {
			return nil, fmt.Errorf("script group %s: gid %q: %w", group, gr.Gid, err)
		}
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if supplementary {
		ids, err := u.db.groupIDs(pw)
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // no /etc/group: no groups
			return nil, fmt.Errorf("script user %s: groups: %w", userName, err)
		}
		for _, id := range ids {
			n, err := strconv.ParseUint(id, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("script user %s: group id %q: %w", userName, id, err)
			}
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	if int(cred.Uid) == os.Getuid() && int(cred.Gid) == os.Getgid() && !supplementary {
		return nil, nil
	}
	return cred, nil
}
