package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the metrics gathered from g in the Prometheus text format,
// for /metrics on the admin listener. A collector that fails is reported in
// the response and the rest are still served.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// RegisterRuntime adds the Go runtime and process collectors (memory, GC,
// goroutines, open files, CPU) to reg.
func RegisterRuntime(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: register runtime: %w", err)
		}
	}
	return nil
}

// Upstream error kinds returned by [UpstreamErrorKind].
const (
	UpstreamTimeout  = "timeout"
	UpstreamRefused  = "refused"
	UpstreamDNS      = "dns"
	UpstreamTLS      = "tls"
	UpstreamReset    = "reset"
	UpstreamCanceled = "canceled"
	UpstreamOther    = "other"
)

// UpstreamErrorKind classifies an error from the upstream transport into one
// of a fixed set of kinds, for [Metrics.UpstreamError].
func UpstreamErrorKind(err error) string {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		netErr  net.Error
	)
	switch {
	case err == nil:
		return UpstreamOther
	case errors.Is(err, context.Canceled):
		return UpstreamCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return UpstreamTimeout
	case errors.As(err, &dnsErr):
		return UpstreamDNS
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert):
		return UpstreamTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return UpstreamRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return UpstreamReset
	case errors.As(err, &netErr) && netErr.Timeout():
		return UpstreamTimeout
	}
	return UpstreamOther
}
