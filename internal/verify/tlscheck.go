package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"
)

func tlsChecks(ctx context.Context, r *runner) []Result {
	all := []*checkDef{defTLS10, defTLS11, defSuiteKex, defSuiteCBC, defSuiteBroken, defChain, defHostname, defExpiry, defKeySize, defSigAlg}
	if r.target.Scheme != "https" || r.base.tls == nil {
		s := r.session(defHTTPS)
		s.note("GET "+r.target.String(), r.base.https.answer(0))
		return append([]Result{s.fail("the target is plain HTTP: credentials and data cross the network in clear text")},
			r.skipAll("the target is plain HTTP; no TLS to inspect", all...)...)
	}
	cs := r.base.tls
	s := r.session(defHTTPS)
	s.note("GET "+r.target.String(), fmt.Sprintf("%s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)))
	out := []Result{s.pass("served over %s with %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))}

	addr := hostPort(r.target)
	name := r.target.Hostname()
	out = append(out,
		r.versionRefused(ctx, defTLS10, addr, name, wireTLS10),
		r.versionRefused(ctx, defTLS11, addr, name, wireTLS11))

	// Control: a TLS 1.2 hello offering the good suites must get a
	// ServerHello, or the suite probes prove nothing.
	kex := r.session(defSuiteKex)
	var control helloResult
	if kex.spend() == nil {
		control = r.probeHello(ctx, addr, name, wireTLS12, goodSuites)
		kex.note("ClientHello TLS 1.2 offering the ECDHE AEAD suites (control)", control.String())
	}
	tls12 := true
	controlNote := ""
	if !control.accepted {
		if cs.Version == tls.VersionTLS12 {
			// The server spoke TLS 1.2 to Go but refused the probe: the probe
			// is not understood, so the suite results would be meaningless.
			reason := "the control ClientHello (TLS 1.2, ECDHE AEAD suites) was refused although the server speaks TLS 1.2: suites could not be probed"
			out = append(out, kex.warn("%s", reason))
			return append(out, append(r.skipAll(reason, defSuiteCBC, defSuiteBroken), r.certResults()...)...)
		}
		tls12 = false
		controlNote = "TLS 1.2 is not offered (TLS 1.3 only), so no TLS 1.2 suite applies"
	}
	if !tls12 {
		out = append(out, kex.pass("%s", controlNote))
		for _, d := range []*checkDef{defSuiteCBC, defSuiteBroken} {
			out = append(out, r.session(d).pass("%s", controlNote))
		}
		return append(out, r.certResults()...)
	}
	out = append(out,
		r.suitesRefused(ctx, kex, addr, name, nonECDHESuites, "without ECDHE key exchange (no forward secrecy)"),
		r.suitesRefused(ctx, r.session(defSuiteCBC), addr, name, cbcSuites, "with CBC-mode ciphers"),
		r.suitesRefused(ctx, r.session(defSuiteBroken), addr, name, brokenSuites, "that are broken (RC4, 3DES, DES, NULL, export, anonymous)"))
	return append(out, r.certResults()...)
}

// versionRefused offers only version (with every legacy suite) and passes
// when no ServerHello for it comes back.
func (r *runner) versionRefused(ctx context.Context, def *checkDef, addr, name string, version uint16) Result {
	s := r.session(def)
	if err := s.spend(); err != nil {
		return s.warn("%v", err)
	}
	res := r.probeHello(ctx, addr, name, version, legacySuites)
	s.note(fmt.Sprintf("ClientHello %s to %s offering %d legacy suites", versionName(version), addr, len(legacySuites)), res.String())
	if res.accepted {
		return s.fail("the server negotiated %s (%s)", versionName(version), suiteName(res.suite))
	}
	if res.err != nil && res.alert == 0 && !strings.Contains(res.err.Error(), "closed") && !strings.Contains(res.err.Error(), "reset") {
		return s.warn("could not tell: %v", res.err)
	}
	return s.pass("%s refused (%s)", versionName(version), res.String())
}

// suitesRefused offers each suite alone with TLS 1.2; any ServerHello that
// picks it fails the check.
func (r *runner) suitesRefused(ctx context.Context, s *session, addr, name string, suites []suite, what string) Result {
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
	)
	for _, su := range suites {
		if err := s.spend(); err != nil {
			return s.warn("%v", err)
		}
		wg.Go(func() {
			res := r.probeHello(ctx, addr, name, wireTLS12, []suite{su})
			if res.accepted {
				mu.Lock()
				accepted = append(accepted, su.name)
				mu.Unlock()
				s.note("ClientHello TLS 1.2 offering only "+su.name, res.String())
			}
		})
	}
	wg.Wait()
	if len(accepted) > 0 {
		return s.fail("the server accepted %d suite(s) %s: %s", len(accepted), what, strings.Join(accepted, ", "))
	}
	s.note(fmt.Sprintf("%d ClientHellos TLS 1.2, one suite each", len(suites)), "none answered with a ServerHello")
	return s.pass("all %d suites %s were refused", len(suites), what)
}

// certResults judge the certificate chain seen by the baseline request.
func (r *runner) certResults() []Result {
	cs := r.base.tls
	leaf := cs.PeerCertificates[0]
	now := r.opts.Now()
	desc := fmt.Sprintf("subject %q, issuer %q, SAN %s, valid %s to %s",
		leaf.Subject.String(), leaf.Issuer.String(), strings.Join(sans(leaf), ","),
		leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly))
	req := "TLS handshake with " + hostPort(r.target) + " (baseline)"
	var out []Result

	s := r.session(defChain)
	s.note(req, desc)
	switch {
	case r.base.chainErr == nil:
		out = append(out, s.pass("chain of %d certificate(s) verified", len(cs.PeerCertificates)))
	case r.opts.Insecure:
		out = append(out, s.warn("not trusted (%v); accepted only because insecure mode is on", r.base.chainErr))
	default:
		out = append(out, s.fail("not trusted: %v", r.base.chainErr))
	}

	s = r.session(defHostname)
	s.note(req, desc)
	if err := leaf.VerifyHostname(r.target.Hostname()); err != nil {
		out = append(out, s.fail("%v", err))
	} else {
		out = append(out, s.pass("certificate covers %s", r.target.Hostname()))
	}

	s = r.session(defExpiry)
	s.note(req, desc)
	left := leaf.NotAfter.Sub(now)
	switch {
	case now.Before(leaf.NotBefore):
		out = append(out, s.fail("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339)))
	case left <= 0:
		out = append(out, s.fail("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case left < 30*24*time.Hour:
		out = append(out, s.warn("expires in %d day(s), on %s", int(left.Hours()/24), leaf.NotAfter.UTC().Format(time.DateOnly)))
	default:
		out = append(out, s.pass("valid for %d more days", int(left.Hours()/24)))
	}

	s = r.session(defKeySize)
	kd, strong := keyDesc(leaf)
	s.note(req, "public key: "+kd)
	if strong {
		out = append(out, s.pass("%s", kd))
	} else {
		out = append(out, s.fail("weak key: %s", kd))
	}

	s = r.session(defSigAlg)
	var weak []string
	for i, c := range cs.PeerCertificates {
		selfSigned := c.CheckSignatureFrom(c) == nil
		if i > 0 && selfSigned {
			continue // a root's own signature is not checked by anyone
		}
		switch c.SignatureAlgorithm {
		case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
			weak = append(weak, fmt.Sprintf("%q signed with %s", c.Subject.CommonName, c.SignatureAlgorithm))
		}
	}
	s.note(req, "leaf signature: "+leaf.SignatureAlgorithm.String())
	if len(weak) > 0 {
		out = append(out, s.fail("%s", strings.Join(weak, "; ")))
	} else {
		out = append(out, s.pass("signed with %s", leaf.SignatureAlgorithm))
	}
	return out
}

func sans(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		out = []string{"(none)"}
	}
	return out
}

// keyDesc names the public key and says whether it is strong enough.
func keyDesc(c *x509.Certificate) (string, bool) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		return fmt.Sprintf("RSA %d bits", bits), bits >= 2048
	case *ecdsa.PublicKey:
		bits := k.Curve.Params().BitSize
		return fmt.Sprintf("ECDSA %s", k.Curve.Params().Name), bits >= 256
	case ed25519.PublicKey:
		return "Ed25519", true
	}
	return c.PublicKeyAlgorithm.String(), false
}
