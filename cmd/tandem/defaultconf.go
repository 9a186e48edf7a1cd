package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// defaultConfigs are the files "tandem run" and "tandem check" read when
// no -f is given, first found first: Tandem's own, then keepalived's, so
// that a director migrating from keepalived runs its existing file
// unchanged (docs/migrating-from-keepalived.md). Tests replace the list.
var defaultConfigs = []string{"/etc/tandem/keepalived.conf", "/etc/keepalived/keepalived.conf"}

// defaultConfigHelp is the sentence the commands' help gives about it.
var defaultConfigHelp = fmt.Sprintf("Without -f, FILE is %s when it exists, else\n%s; with neither, it stops with an error.", defaultConfigs[0], defaultConfigs[1])

// configFile returns file, or the first of defaultConfigs that exists
// when file is empty; an error naming every path tried when none does.
func configFile(file string) (string, error) {
	if file != "" {
		return file, nil
	}
	for _, p := range defaultConfigs {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("configuration %s: %w", p, err)
		}
	}
	return "", fmt.Errorf("no -f FILE given and no configuration at %s", strings.Join(defaultConfigs, " or "))
}
