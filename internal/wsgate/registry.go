package wsgate

import (
	"context"
	"errors"
	"sync"
)

// Errors from Registry.Acquire when a cap is reached.
var (
	ErrPrincipalLimit = errors.New("wsgate: connection limit per principal reached")
	ErrGlobalLimit    = errors.New("wsgate: global connection limit reached")
)

// Slot is one connection as a Registry counts it.
type Slot struct {
	// Principal identifies whose connection it is ("api_key:<id>").
	Principal string
	// ConnID is unique per connection.
	ConnID string
	// MaxPerPrincipal and MaxTotal are the caps to enforce; zero or
	// negative means no cap.
	MaxPerPrincipal int
	MaxTotal        int
}

// Registry counts open connections so the caps hold: across instances
// when the implementation is shared.
type Registry interface {
	// Acquire counts s if neither cap is reached; otherwise it returns
	// ErrPrincipalLimit or ErrGlobalLimit. Any other error means the
	// registry failed and the connection is refused.
	Acquire(ctx context.Context, s Slot) error
	// Release stops counting s.
	Release(ctx context.Context, s Slot) error
}

// MemoryRegistry is a Registry for a single instance.
type MemoryRegistry struct {
	mu    sync.Mutex
	by    map[string]int
	total int
}

// NewMemoryRegistry returns an empty in-memory registry.
func NewMemoryRegistry() *MemoryRegistry {
	return &MemoryRegistry{by: make(map[string]int)}
}

// Acquire implements Registry.
func (m *MemoryRegistry) Acquire(_ context.Context, s Slot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.MaxPerPrincipal > 0 && m.by[s.Principal] >= s.MaxPerPrincipal {
		return ErrPrincipalLimit
	}
	if s.MaxTotal > 0 && m.total >= s.MaxTotal {
		return ErrGlobalLimit
	}
	m.by[s.Principal]++
	m.total++
	return nil
}

// Release implements Registry.
func (m *MemoryRegistry) Release(_ context.Context, s Slot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.by[s.Principal]
	if !ok {
		return nil
	}
	if n <= 1 {
		delete(m.by, s.Principal)
	} else {
		m.by[s.Principal] = n - 1
	}
	m.total--
	return nil
}
