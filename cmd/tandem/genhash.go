package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"tandem/internal/check"
)

func newGenhashCmd() *cobra.Command {
	var rawURL, vhost string
	var ssl bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "genhash --url URL [--ssl] [--virtualhost HOST]",
		Short: "Print the MD5 digest of a page, for HTTP_GET/SSL_GET digest lines",
		Long: `genhash fetches URL exactly as an HTTP_GET (or, with --ssl or an https
URL, SSL_GET) checker would — same request and Host header, no redirects —
and prints the status and the MD5 of the body, as keepalived's genhash does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(rawURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--url %q: want http://HOST[:PORT]/PATH or the https form", rawURL)
			}
			ssl = ssl || u.Scheme == "https"
			port := 80
			if ssl {
				port = 443
			}
			if p := u.Port(); p != "" {
				if port, err = strconv.Atoi(p); err != nil {
					return fmt.Errorf("--url: port %q", p)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+time.Second)
			defer cancel()
			ip, err := resolve(ctx, u.Hostname())
			if err != nil {
				return err
			}
			path := u.RequestURI()
			page, err := check.Digest(ctx, netip.AddrPortFrom(ip, uint16(port)), path, vhost, ssl, timeout)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "tandem genhash: %s: %v\n", rawURL, err)
				return exitError{1}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "URL:    %s\nStatus: %d\nSize:   %d\n", rawURL, page.Status, page.Size)
			fmt.Fprintf(out, "MD5SUM = %s\n", page.MD5)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rawURL, "url", "", "the page: http://HOST[:PORT]/PATH (https:// implies --ssl)")
	f.BoolVar(&ssl, "ssl", false, "use TLS, as SSL_GET")
	f.StringVar(&vhost, "virtualhost", "", "Host header (and TLS SNI) to send, as the checker's virtualhost")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "whole-request timeout, as connect_timeout")
	return cmd
}

// resolve takes an address or looks a name up, preferring IPv4.
func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %v", host, err)
	}
	for _, ip := range ips {
		if ip.Is4() || ip.Is4In6() {
			return ip.Unmap(), nil
		}
	}
	return ips[0], nil
}
