// Package identity gives people accounts in front of any upstream: bcrypt
// passwords under a policy (length, 10 000 common passwords, not the
// username), TOTP second factors with single-use hashed backup codes,
// sessions with rotating refresh tokens and family revocation on reuse,
// HS256 access tokens from a keyring, lockout after failed logins, and a
// JSON API and server-rendered pages under /.rampart/.
//
// Service is built from Options (a Store, the JWT keys and limits) and
// offers Handler, mounted by the integrator under BasePath, and
// Authenticate, the authenticator for routes that take people. Manager
// administers accounts for the CLI: create, lock, unlock, reset, export
// and erase.
//
// Storage is behind the Store interface, which internal/store/sqlite and
// internal/store/postgres implement; this package never imports a driver.
// Time and randomness are injected, so lockout windows, token expiry and
// TOTP steps are tested without sleeping.
package identity
