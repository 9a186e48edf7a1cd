package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"tandem/internal/config"
)

// compatFinding is one finding of check --keepalived-compat --json.
type compatFinding struct {
	File       string            `json:"file"`
	Line       int               `json:"line"`
	Col        int               `json:"col"`
	Keyword    string            `json:"keyword"`
	Kind       config.CompatKind `json:"kind"`
	Difference string            `json:"difference"`
}

// compatReport prints what in file behaves differently from keepalived
// (config.CompatFile): one line per finding and a count, or JSON. Errors
// go to standard error; only they make the exit status 1.
func compatReport(cmd *cobra.Command, file, configID string, asJSON bool) error {
	fs, diags := config.CompatFile(file, config.Options{ConfigID: configID})
	for _, d := range diags {
		if d.Severity == config.Error {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
	}
	counts := map[config.CompatKind]int{}
	out := cmd.OutOrStdout()
	list := make([]compatFinding, 0, len(fs))
	for _, f := range fs {
		counts[f.Kind]++
		list = append(list, compatFinding{File: f.Pos.File, Line: f.Pos.Line, Col: f.Pos.Col, Keyword: f.Keyword, Kind: f.Kind, Difference: f.Difference})
		if !asJSON {
			fmt.Fprintf(out, "%s: %s: %s: %s\n", f.Pos, f.Keyword, f.Kind, f.Difference)
		}
	}
	unsup, differs, adds, ext := counts[config.CompatUnsupported], counts[config.CompatDiffers], counts[config.CompatAdds], counts[config.CompatTandem]
	if asJSON {
		b, err := json.MarshalIndent(struct {
			Findings    []compatFinding `json:"findings"`
			Unsupported int             `json:"unsupported"`
			Differs     int             `json:"differs"`
			Adds        int             `json:"adds"`
			Tandem      int             `json:"tandem"`
		}{list, unsup, differs, adds, ext}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", b)
	} else {
		fmt.Fprintf(out, "%d findings: %d unsupported, %d differ, %d add, %d Tandem-only\n", len(fs), unsup, differs, adds, ext)
	}
	if diags.HasErrors() {
		return exitError{1}
	}
	return nil
}
