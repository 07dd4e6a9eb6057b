package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// serverUser is the OS identity the server processes run as: the current
// user, or the "postgres" user when we are root (PostgreSQL refuses root).
type serverUser struct {
	uid, gid int
	groups   []int
	cred     *syscall.Credential // nil: run as the current user
}

func lookupServerUser() (serverUser, error) {
	if os.Geteuid() != 0 {
		return serverUser{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return serverUser{}, fmt.Errorf("running as root but there is no \"postgres\" OS user to run PostgreSQL as "+
			"(create one with useradd -r postgres, or run as a non-root user): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return serverUser{}, fmt.Errorf("parse postgres user ids: %w", err)
	}
	su := serverUser{uid: uid, gid: gid, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil {
				su.groups = append(su.groups, n)
			}
		}
	}
	return su, nil
}

// switched reports whether server processes run as a different user.
func (u serverUser) switched() bool { return u.cred != nil }

// command builds a command that runs as the server user, in its own
// process group so that a Ctrl-C in the terminal does not reach the server.
func (u serverUser) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: u.cred}
	return cmd
}

// chown hands path to the server user when we run as root.
func (u serverUser) chown(path string) error {
	if !u.switched() {
		return nil
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// mkdirAll creates dir (mode 0700) and any missing parents, handing every
// directory it created to the server user.
func (u serverUser) mkdirAll(dir string) error {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	for _, p := range missing {
		if err := u.chown(p); err != nil {
			return err
		}
	}
	return nil
}

// checkTraversable fails when the server user cannot reach dir because one
// of its ancestors lacks the search (x) permission for it.
func (u serverUser) checkTraversable(dir string) error {
	if !u.switched() {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check data dir parent: %w", err)
		}
		if !u.canSearch(info) {
			return fmt.Errorf("data dir %s: the postgres user cannot enter %s (mode %v); "+
				"run chmod o+x %s or choose a data dir elsewhere (e.g. under /tmp)", dir, p, info.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (u serverUser) canSearch(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	perm := info.Mode().Perm()
	switch {
	case !ok:
		return true
	case int(st.Uid) == u.uid:
		return perm&0o100 != 0
	case int(st.Gid) == u.gid || slices.Contains(u.groups, int(st.Gid)):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
