// Package secrets resolves secret references (env:, file:, aws-sm:, vault:)
// into keyrings of current and previous versions, re-reads them on an interval
// and on demand so secrets rotate without a restart, and refuses default,
// short or low-entropy values. Secret values never reach a log: the Secret
// type formats itself redacted everywhere.
//
// A reference is written wherever the configuration takes a secret:
//
//	env:RAMPART_API_KEY_PEPPER
//	file:/run/secrets/jwt_key
//	aws-sm:rampart/jwt#signing_key
//	vault:secret/rampart/pepper#value
//
// A value with no scheme is an inline secret: accepted with a warning in
// development mode and refused in production mode.
package secrets
