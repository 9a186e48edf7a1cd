package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Serve is the built-in web server of a real server when nginx is not
// installed (`tandem lab serve`, started inside the node's namespace): it
// answers every request with 200 and "<name>\n", as the demo's nginx
// configuration does, until ctx is done.
func Serve(ctx context.Context, name string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("serve %s: %w", name, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%s\n", name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", name, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("serve %s: shutdown: %w", name, err)
	}
	return nil
}
