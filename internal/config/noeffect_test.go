package config_test

import (
	"go/ast"
	"go/types"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"

	"tandem/internal/config"
)

// notRead are model fields no package outside internal/config needs to
// read, each with why. Keep it short: a keyword that has no effect is
// implemented or warned about as unsupported (and then needs no field).
var notRead = map[string]string{
	// Parse state: defaults resolved at load (finalize.go, vrrpmodes.go)
	// into the fields the running code reads.
	"Global.VRRPStrict":             "default of Instance.StrictMode",
	"Global.VRRPSkipCheckAdv":       "default of Instance.SkipCheckAdv",
	"Global.VRRPCheckUnicastSrc":    "default of Instance.CheckUnicastSrc",
	"Global.VRRPLowerPrioNoAdvert":  "default of Instance.LowerPrioNoAdv",
	"Global.VRRPHigherPrioSendAdv":  "default of Instance.HigherPrioSend",
	"Global.VRRPNotifyPriorityChgs": "default of Instance.NotifyPrioChgs",
	"Global.V3ChecksumAsV2":         "default of Instance.V3ChecksumAsV2",
	"Global.VRRPVersion":            "default of Instance.Version",
	"Global.Garp":                   "default of Instance.Garp",
	"Global.DefaultInterface":       "default of Instance.Interface",
	"Global.VMACPrefix":             "default of VMAC.Name",
	"Global.SMTPAlertChecker":       "default of VirtualServer.SMTPAlert and RealServer.SMTPAlert",
	"Global.CheckerLogAll":          "default of Checker.LogAll",
	"SyncGroup.NotifyPrioChange":    "default of its members' Instance.NotifyPrioChgs",
	"SyncGroup.TrackingWeight":      "applied at load: without it the members' trackers lose their weights",
	"SyncGroup.GlobalTracking":      "deprecated; read as SyncGroup.TrackingWeight",
	"Script.Weight":                 "default of TrackRef.Weight",
	"Script.WeightReverse":          "default of TrackRef.Reverse",
	"BFDInstance.Weight":            "default of TrackRef.Weight (track_bfd)",
	"BFDInstance.WeightReverse":     "default of TrackRef.Reverse (track_bfd)",
	"TrackProcess.Weight":           "default of TrackRef.Weight",
	"TrackProcess.Reverse":          "default of TrackRef.Reverse",
	"TrackRef.WeightSet":            "whether TrackRef.Weight was given, for the defaults",
	"Broadcast.Auto":                "brd + is computed into Broadcast.Addr",
	"Instance.NoVirtualIPAddr":      "only silences the no-address warning",
	"VirtualServer.Virtualhost":     "default of HTTPCheck.Virtualhost",
	"RealServer.Virtualhost":        "default of HTTPCheck.Virtualhost",
	"VirtualServer.Inhibit":         "default of RealServer.Inhibit",
	"VirtualServer.Weight":          "default of RealServer.Weight",
	"VirtualServer.Tunnel":          "default of RealServer.Tunnel and SorryServer.Tunnel",
	"VirtualServer.Defaults":        "cascades into Checker.Timing",
	"RealServer.Defaults":           "cascades into Checker.Timing",
	"Checker.Set":                   "cascades into Checker.Timing",
	"BGP.Announce":                  "read through Config.BGPAnnounced, which the daemon announces from",
}

// modelFields walks config.Config and every struct type of package config
// reachable from it, except through notRead fields, and returns their
// exported fields as "Type.Field".
func modelFields() []string {
	var out []string
	seen := map[reflect.Type]bool{}
	cfgPath := reflect.TypeFor[config.Config]().PkgPath()
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != cfgPath || seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			// Pos only places diagnostics, which config writes itself.
			if !f.IsExported() || f.Name == "Pos" {
				continue
			}
			name := t.Name() + "." + f.Name
			out = append(out, name)
			// What parse state holds is parse state too (TimingDefaults).
			if notRead[name] == "" {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[config.Config]())
	return out
}

// readOutside returns the fields ("Type.Field") of package config's types
// that non-test code of the other packages of the module reads: selector
// expressions resolving to the field, other than the target of an
// assignment. Formatting, diffing and dumping the model happen inside
// internal/config and so do not count.
func readOutside(t *testing.T) map[string]bool {
	t.Helper()
	cfgPath := reflect.TypeFor[config.Config]().PkgPath()
	module := strings.TrimSuffix(cfgPath, "/internal/config")
	pkgs, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo | packages.NeedImports,
		Dir:  "../..",
		Env:  append(os.Environ(), "CGO_ENABLED=0"),
	}, module+"/...")
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("load %s: %v", p.PkgPath, e)
		}
		if p.PkgPath == cfgPath || strings.HasPrefix(p.PkgPath, cfgPath+"/") {
			continue
		}
		cp := p.Imports[cfgPath]
		if cp == nil {
			continue
		}
		owner := fieldOwners(cp.Types)
		for _, f := range p.Syntax {
			written := map[ast.Expr]bool{}
			ast.Inspect(f, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok && as.Tok.String() == "=" {
					for _, l := range as.Lhs {
						written[l] = true
					}
				}
				se, ok := n.(*ast.SelectorExpr)
				if !ok || written[se] {
					return true
				}
				if s := p.TypesInfo.Selections[se]; s != nil && s.Kind() == types.FieldVal {
					if name, ok := owner[s.Obj()]; ok {
						read[name] = true
					}
				}
				return true
			})
		}
	}
	return read
}

// fieldOwners maps each field of the struct types of package pkg to its
// "Type.Field" name.
func fieldOwners(pkg *types.Package) map[types.Object]string {
	out := map[types.Object]string{}
	for _, name := range pkg.Scope().Names() {
		tn, ok := pkg.Scope().Lookup(name).(*types.TypeName)
		if !ok {
			continue
		}
		st, ok := tn.Type().Underlying().(*types.Struct)
		if !ok {
			continue
		}
		for f := range st.Fields() {
			out[f] = name + "." + f.Name()
		}
	}
	return out
}

// TestModelFieldsHaveEffect fails for a field of the configuration model
// that nothing outside internal/config reads: a keyword that is parsed
// and then silently ignored (DESIGN.md, principle 3). Implement it, or
// make the keyword warn as unsupported and drop the field.
func TestModelFieldsHaveEffect(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the whole module")
	}
	read := readOutside(t)
	fields := modelFields()
	n := 0
	for _, f := range fields {
		switch {
		case read[f]:
			n++
			if why, ok := notRead[f]; ok {
				t.Errorf("%s is read outside internal/config now; drop it from notRead (%q)", f, why)
			}
		case notRead[f] != "":
		default:
			t.Errorf("config field %s is read by no package outside internal/config: its keyword has no effect", f)
		}
	}
	for f := range notRead {
		if !slices.Contains(fields, f) {
			t.Errorf("notRead names %s, which is not a model field", f)
		}
	}
	t.Logf("%d model fields, %d read outside internal/config", len(fields), n)
}
