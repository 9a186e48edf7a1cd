package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGenhash: the digest genhash prints is the MD5 of the body the server
// sends, fetched with the Host header given, without following redirects.
func TestGenhash(t *testing.T) {
	body := "hello from the real server\n"
	var host string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	sum := md5.Sum([]byte(body))
	var out, errOut bytes.Buffer
	if code := run([]string{"genhash", "--url", srv.URL + "/index.html", "--virtualhost", "www.example.org"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "MD5SUM = "+hex.EncodeToString(sum[:])) || !strings.Contains(out.String(), "Status: 200") {
		t.Errorf("output:\n%s\nwant MD5SUM = %x", out.String(), sum)
	}
	if host != "www.example.org" {
		t.Errorf("Host header %q, want the virtualhost", host)
	}
	out.Reset()
	if code := run([]string{"genhash", "--url", srv.URL + "/moved"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Status: 302") {
		t.Errorf("a redirect must be reported, not followed: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"genhash", "--url", "ftp://x/"}, &out, &errOut); code != 2 {
		t.Errorf("bad URL: exit %d, want 2", code)
	}
}
