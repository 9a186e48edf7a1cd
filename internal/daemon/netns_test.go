package daemon

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"tandem/internal/config"
)

// TestCheckNamespace: a configuration naming a namespace that does not
// exist is refused with the way to create it; one naming none runs.
func TestCheckNamespace(t *testing.T) {
	name := fmt.Sprintf("tandem-absent-%d", os.Getpid())
	cfg := &config.Config{}
	if err := checkNamespace(cfg); err != nil {
		t.Fatalf("no net_namespace: %v", err)
	}
	cfg.Global.NetNamespace = name
	err := checkNamespace(cfg)
	if err == nil || !strings.Contains(err.Error(), "net_namespace "+name+": /run/netns/"+name+" does not exist (create it with ip netns add "+name+")") {
		t.Fatalf("absent namespace: %v", err)
	}
}
