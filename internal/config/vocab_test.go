package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// vocabBlocks places a keyword line (%s) in each block Tandem reads, so
// that the parser itself says whether it knows the keyword there. A
// keyword keepalived knows must be implemented or named as unsupported in
// at least one block: the parser then never calls it unknown.
var vocabBlocks = map[string]string{
	"keepalived.conf":    "%s\n",
	"global_defs":        "global_defs {\n%s\n}\n",
	"vrrp_script":        "vrrp_script s {\n%s\n}\n",
	"vrrp_track_file":    "vrrp_track_file f {\n%s\n}\n",
	"vrrp_track_process": "vrrp_track_process p {\n%s\n}\n",
	// A bare word in a sync group is a keepalived 1.x member: give the
	// keyword an argument so that it is dispatched as a keyword.
	"vrrp_sync_group": "vrrp_sync_group g {\n%s x\n}\n",
	"vrrp_instance":   "vrrp_instance i {\n%s\n}\n",
	"authentication":  "vrrp_instance i {\nauthentication {\n%s\n}\n}\n",
	"virtual_server":  "virtual_server 10.0.0.1 80 {\n%s\n}\n",
	"real_server":     "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n%s\n}\n}\n",
	"url":             "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\nHTTP_GET {\nurl {\n%s\n}\n}\n}\n}\n",
	"host":            "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\nSMTP_CHECK {\nhost {\n%s\n}\n}\n}\n}\n",
	"garp_group":      "garp_group {\ninterface eth0\n%s\n}\n",
}

func init() {
	for _, c := range checkTypes.words() {
		vocabBlocks[c] = "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n" + c + " {\n%s\n}\n}\n}\n"
	}
}

// knownIn returns the blocks in which the parser knows kw (implemented or
// named as unsupported).
func knownIn(kw string) []string {
	var out []string
	for ctx, tmpl := range vocabBlocks {
		_, diags := Parse("v.conf", []byte(fmt.Sprintf(tmpl, kw)), Options{ConfigID: "x"})
		unknown := false
		for _, d := range diags {
			if strings.Contains(d.Msg, fmt.Sprintf("unknown keyword %q", kw)) {
				unknown = true
			}
		}
		if !unknown {
			out = append(out, ctx)
		}
	}
	sort.Strings(out)
	return out
}

// keepalivedKeywords reads keepalived-keywords.txt: source file -> keywords.
func keepalivedKeywords(t *testing.T) map[string][]string {
	path := filepath.Join(corpusDir, "keepalived-keywords.txt")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("shared corpus not found (%s); skipping the vocabulary check", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	src := ""
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "== "); ok {
			src = strings.TrimSpace(f)
			continue
		}
		for _, w := range strings.Fields(line) {
			_, kw, ok := strings.Cut(w, ":")
			if !ok {
				t.Fatalf("%s: %q has no keyword prefix", src, w)
			}
			out[src] = append(out[src], kw)
		}
	}
	return out
}

// bfdKept are the BFD keywords that appear outside BFD blocks, which Tandem
// must name; the rest of bfd_parser.c only exists inside bfd_instance.
var bfdKept = map[string]bool{"BFD_CHECK": true, "track_bfd": true, "bfd_instance": true}

func TestVocabulary(t *testing.T) {
	kws := keepalivedKeywords(t)
	if len(kws) == 0 {
		t.Fatal("no keywords read")
	}
	var missing []string
	seen := map[string]bool{}
	for src, list := range kws {
		for _, kw := range list {
			if strings.HasSuffix(src, "bfd_parser.c") && !bfdKept[kw] || seen[kw] {
				continue
			}
			seen[kw] = true
			if len(knownIn(kw)) == 0 && !listedUnsupported(kw) {
				missing = append(missing, src+": "+kw)
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("keepalived keyword unknown to Tandem (implement it or add it to vocab.go's unsupported): %s", m)
	}
}

// TestVocabularyUnknown checks the other side: a made-up keyword is unknown
// everywhere, so knownIn really tells.
func TestVocabularyUnknown(t *testing.T) {
	if got := knownIn("no_such_keyword_anywhere"); len(got) != 0 {
		t.Errorf("made-up keyword known in %v", got)
	}
	if got := knownIn("virtual_router_id"); len(got) != 1 || got[0] != "vrrp_instance" {
		t.Errorf("virtual_router_id known in %v, want [vrrp_instance]", got)
	}
}

// listedUnsupported reports whether vocab.go names kw in any block,
// including the children of root blocks that are ignored as a whole (SSL,
// garp_group, track_group), which the parser never dispatches.
func listedUnsupported(kw string) bool {
	for _, m := range unsupported {
		if _, ok := m[kw]; ok {
			return true
		}
	}
	return false
}
