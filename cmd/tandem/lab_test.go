package main

import (
	"os"
	"strings"
	"testing"
)

// TestRequireStatic: the lab refuses a dynamically linked tandem and takes
// a static one.
func TestRequireStatic(t *testing.T) {
	t.Run("dynamic", func(t *testing.T) {
		if err := requireStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("requireStatic(/bin/sh) = %v, want a refusal naming CGO_ENABLED=0", err)
		}
	})
	t.Run("static", func(t *testing.T) {
		// Debian's ldconfig is static-pie; busybox-static's busybox is
		// static.
		for _, bin := range []string{"/sbin/ldconfig", "/bin/busybox"} {
			if _, err := os.Stat(bin); err != nil {
				continue
			}
			if err := requireStatic(bin); err != nil {
				t.Errorf("requireStatic(%s) = %v, want nil", bin, err)
			}
			return
		}
		t.Skip("no static binary known here (/sbin/ldconfig, /bin/busybox)")
	})
	t.Run("not an executable", func(t *testing.T) {
		if err := requireStatic(os.DevNull); err == nil {
			t.Error("requireStatic(/dev/null) = nil, want an error")
		}
	})
}
