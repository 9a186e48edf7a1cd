package main

import (
	"github.com/spf13/cobra"
)

func newFmtCmd() *cobra.Command {
	return &cobra.Command{Use: "fmt FILE", Hidden: true}
}
