package daemon

import "tandem/internal/api"

// listenHTTP starts the optional HTTP listener (--http: metrics, status
// document, status page); the returned close stops it. Without an address
// it does nothing: the listener is opt-in, as it exposes the status to
// whoever can reach the address.
func (d *Daemon) listenHTTP() (close func(), err error) {
	if d.opts.HTTP == "" {
		return func() {}, nil
	}
	srv, err := api.ListenHTTP(d.opts.HTTP, d, d.opts.Log, connCap(d.files, maxHTTPConns), api.HandlerOptions{HistoryInterval: d.opts.HistoryInterval})
	if err != nil {
		return nil, err
	}
	d.opts.Log.Info("http listener", "addr", d.opts.HTTP, "endpoints", "/metrics /status.json /")
	return func() {
		if err := srv.Close(); err != nil {
			d.opts.Log.Warn("http listener close", "err", err)
		}
	}, nil
}
