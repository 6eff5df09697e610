// Package ratelimit limits requests with the generic cell rate algorithm
// (GCRA), per rule and per subject, and writes the standard rate-limit
// response headers.
//
// # Model
//
// A [Limit] of N per period W with burst B admits a sustained rate of one
// request every W/N (the emission interval T) and lets a subject with no
// recent traffic make B requests at once. Over any interval of length d, at
// most B + floor(d/T) requests are admitted. B defaults to N, so "60/min"
// admits 60 requests at once and then one per second.
//
// The state of one (rule, subject) pair is a single timestamp, the
// theoretical arrival time (TAT). [Decide] is the whole algorithm as a pure
// function of the current time and the stored TAT; a rejected request does not
// change the TAT, so it consumes nothing. A subject whose TAT is in the past
// is indistinguishable from a new one, which is why idle state can be dropped.
//
// # Limiters
//
// A [Limiter] decides a set of [Check]s for one request atomically: the
// request is admitted only when every check admits it, and when any check
// rejects it none of them is charged. [Memory] is the in-process
// implementation; internal/store/redis provides one backed by a Lua script so
// that several instances share exact limits. [Fallback] wraps a shared limiter
// with the declared behaviour for when its store fails.
//
// # HTTP
//
// [New] builds the middleware: the integrator supplies the [Rule]s that apply
// to a request, the subject of each rule comes from reqinfo, and every limited
// response carries RateLimit-Policy, RateLimit, X-RateLimit-Limit,
// X-RateLimit-Remaining and X-RateLimit-Reset (see [WriteHeaders] for the
// exact format). A rejected request gets 429, Retry-After and a JSON body.
package ratelimit
