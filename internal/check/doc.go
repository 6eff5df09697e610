// Package check is the static half of rampart's verification: it reads the
// protected app's .env files, docker-compose files, Kubernetes manifests,
// requirements.txt and package.json, and rampart's own config, and reports
// default or weak secrets, secrets kept in plain environment variables, debug
// flags, permissive CORS, database and Redis connections without TLS or
// passwords, in-memory rate limiting and unpinned dependencies. Every finding
// names its file, line, severity, fix and the checklist item it comes from.
// Secret values never appear in a finding.
package check
