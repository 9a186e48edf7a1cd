package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"

	"tandem/internal/lab"
)

// TestSendReportsRefusal: send asks only the last message of a batch for
// an acknowledgement, yet a batch that the kernel refuses in an earlier
// message is reported as failed and commits nothing, and one that it
// accepts is reported as committed.
func TestSendReportsRefusal(t *testing.T) {
	checkHostUntouched(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "dir"}}})
	ns := l.NSHandle(t, "dir")
	k := newKernel(t, ns)
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables := func() []string { return tableNames(t, c) }
	a := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: "send_a"}
	b := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: "send_b"}
	bad, err := capture(func(c *nftables.Conn) error {
		c.AddTable(a)
		c.DelChain(&nftables.Chain{Table: a, Name: "missing"}) // refused: no such chain
		c.AddTable(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.send(bad); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("batch with a refused message: %v, want ENOENT", err)
	}
	if got := tables(); len(got) != 0 {
		t.Errorf("tables after a refused batch: %v, want none", got)
	}
	good, err := capture(func(c *nftables.Conn) error {
		c.AddTable(a)
		c.AddTable(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.send(good); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if got := tables(); len(got) != 2 {
		t.Errorf("tables after the batch: %v, want send_a and send_b", got)
	}
}
