// Package instance is Ganger's mode: instance — a long-lived container
// made on request, with an owner, generated secrets and a lifetime.
//
// What is here so far are its parts that stand alone: the lifetime
// arithmetic (Lifetime: ttl from ready, extensions clamped to max_ttl),
// secrets (crypto/rand, no modulo bias), the templates of cmd, env and the
// connect line, Deadlines (every instance expires at its own time: a heap
// and one timer, never a periodic sweep), and the Store that keeps the
// records (internal/store: SQLite and PostgreSQL). The service that makes,
// expires and recovers instances, its API, page and configuration are not
// written yet.
package instance
