// Package apikey defines Rampart's API key format, key generation, the
// peppered hash stored for each key and the stored Record. It does no I/O:
// randomness and time are passed in, stores live elsewhere.
//
// # Format
//
// A key is 70 ASCII characters:
//
//	rk_live_<id>_<secret><checksum>
//	rk_test_<id>_<secret><checksum>
//
//	rk_live_   environment prefix ("live" or "test"), 8 characters
//	<id>       public key ID, 12 base62 characters (about 71 bits); safe to log
//	_          separator
//	<secret>   43 base62 characters from a cryptographic source (256 bits)
//	<checksum> CRC-32 (IEEE) of everything before it, 6 base62 characters
//
// Base62 is 0-9, A-Z, a-z, so a key survives double-click selection, URLs
// and shell quoting. The checksum lets [Parse] refuse typos and garbage
// before any store lookup; it is not a security control (anyone can compute
// it) and is never a substitute for the hash comparison.
//
// # Finding leaked keys
//
// Secret scanners (GitHub push protection, gitleaks, trufflehog) and log
// searches find leaked keys with one regular expression, [LeakPattern]:
//
//	\brk_(?:live|test)_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b
//
// A match whose checksum verifies ([Parse] succeeds) is a real key with
// near certainty (one false positive in 2^32 random matches).
//
// # Hashing
//
// Stores keep HMAC-SHA256(pepper, "rk_<env>_<id>_<secret>") and the pepper's
// version, never the secret. The secret carries 256 bits of entropy, so a
// slow password hash (bcrypt, argon2) adds nothing against brute force and
// would cost tens of milliseconds of CPU per request; a keyed hash costs
// well under a microsecond. The pepper lives outside the database (secret
// manager or file), so a stolen database alone gives an attacker nothing
// usable: neither the secrets nor a way to test guesses offline. The ID and
// environment are inside the MAC, so a hash row copied onto another key ID
// does not verify. A [Keyring] holds the current pepper and older ones, so
// hashes made under a previous pepper still verify and are reported as
// needing a rehash.
package apikey
