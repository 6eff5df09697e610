package sqlite

import (
	"testing"

	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/store/storetest"
)

func TestIdentityContract(t *testing.T) {
	storetest.Identity(t, func(t *testing.T) identity.Store { return openTest(t) })
}
