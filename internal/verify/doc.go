// Package verify audits a live HTTP deployment against the production
// checklists in docs/checklist.md: TLS protocols, suites and certificate,
// the HTTP to HTTPS redirect and HSTS, security headers, CORS, cookies,
// authentication, WebSocket tickets, rate limits, request size limits and
// exposed files or debug endpoints. What cannot be seen from outside is
// listed as manual with the exact thing to confirm.
//
// Run performs one bounded scan: every check states the most requests it may
// send (Result.MaxRequests), all requests share one concurrency limit, and the
// Report carries the total. Reports render as text, JSON, SARIF 2.1.0, JUnit
// XML and Markdown, with a score and grade in the manner of MDN HTTP
// Observatory.
package verify
