package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned by FindBinDir when no PostgreSQL server
// binaries can be found on this machine.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found: install them " +
	"(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15) or set DATABASE_URL")

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb, pg_ctl, postgres, psql). It tries, in order: $PG_BINDIR,
// `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin and the
// directory of initdb on $PATH.
func FindBinDir() (string, error) {
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		if !hasInitdb(dir) {
			return "", fmt.Errorf("PG_BINDIR=%s has no initdb: point it at the PostgreSQL server bin dir or unset it", dir)
		}
		return dir, nil
	}
	if dir, ok := pgConfigBinDir(); ok {
		return dir, nil
	}
	if dir, ok := newestDebianBinDir(); ok {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func hasInitdb(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, "initdb"))
	return err == nil && !info.IsDir() && info.Mode().Perm()&0o111 != 0
}

func pgConfigBinDir() (string, bool) {
	out, err := exec.Command("pg_config", "--bindir").Output()
	if err != nil {
		return "", false
	}
	dir := strings.TrimSpace(string(out))
	return dir, dir != "" && hasInitdb(dir)
}

// newestDebianBinDir picks the highest-versioned /usr/lib/postgresql/*/bin
// that contains initdb.
func newestDebianBinDir() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, dir := range dirs {
		ver, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || ver <= bestVer || !hasInitdb(dir) {
			continue
		}
		best, bestVer = dir, ver
	}
	return best, best != ""
}
