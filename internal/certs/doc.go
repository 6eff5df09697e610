// Package certs provides rampart's TLS configuration: hardened server
// settings, certificates from files with hot reload, self-signed development
// certificates, and ACME.
//
// Every certificate provider is a [Source]; [ServerConfig] turns one into the
// *tls.Config the HTTPS listener serves with:
//
//	src, err := certs.NewFileSource(certFile, keyFile, log)
//	...
//	go src.Watch(ctx, 10*time.Second) // and src.Reload() on SIGHUP
//	srv := &http.Server{Handler: h, TLSConfig: certs.ServerConfig(src)}
//	err = srv.ServeTLS(ln, "", "")
package certs
