package admin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// KeyView is the JSON form of a key record. It has no secret and no hash.
type KeyView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	RotatedFrom string     `json:"rotated_from,omitempty"`
	RotatedAt   *time.Time `json:"rotated_at,omitempty"`
	GraceUntil  *time.Time `json:"grace_until,omitempty"`
}

// View returns the public view of rec at now.
func View(rec apikey.Record, now time.Time) KeyView {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	v := KeyView{
		ID:          rec.ID,
		Name:        rec.Name,
		Permissions: PermissionNames(rec.Permissions),
		Status:      rec.Status(now).String(),
		CreatedAt:   rec.CreatedAt.UTC(),
		CreatedBy:   rec.CreatedBy,
		ExpiresAt:   opt(rec.ExpiresAt),
		LastUsedAt:  opt(rec.LastUsedAt),
		RevokedAt:   opt(rec.RevokedAt),
		RotatedFrom: rec.RotatedFrom,
		RotatedAt:   opt(rec.RotatedAt),
		GraceUntil:  opt(rec.GraceUntil),
	}
	return v
}

// PermissionNames lists the granted permissions, e.g. ["read", "write"].
func PermissionNames(p reqinfo.Permission) []string {
	names := []string{}
	if s := p.String(); s != "" {
		names = strings.Split(s, ",")
	}
	return names
}

// HandlerOptions configure the admin API handler.
type HandlerOptions struct {
	Manager *Manager            // required
	Auth    *auth.Authenticator // required; every request needs an admin key
	Logger  *slog.Logger        // nil discards
	Now     func() time.Time    // for status in responses; nil means time.Now
	// MaxBodyBytes bounds request bodies. Default 64 KiB.
	MaxBodyBytes int64
}

// NewHandler returns the JSON admin API (see docs/admin-api.md):
//
//	POST /v1/keys                  create; the response carries the key once
//	GET  /v1/keys                  list
//	GET  /v1/keys/review           access review
//	GET  /v1/keys/{id}             show
//	POST /v1/keys/{id}/revoke      revoke
//	POST /v1/keys/{id}/rotate      rotate with a grace period
//
// Every request must carry an API key with admin permission. Mount it on
// the admin listener, at the root or under http.StripPrefix.
func NewHandler(o HandlerOptions) (http.Handler, error) {
	if o.Manager == nil {
		return nil, errors.New("admin: HandlerOptions.Manager is required")
	}
	if o.Auth == nil {
		return nil, errors.New("admin: HandlerOptions.Auth is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	a := &api{m: o.Manager, log: o.Logger, now: o.Now, maxBody: o.MaxBodyBytes}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/keys", a.create)
	mux.HandleFunc("GET /v1/keys", a.list)
	mux.HandleFunc("GET /v1/keys/review", a.review)
	mux.HandleFunc("GET /v1/keys/{id}", a.show)
	mux.HandleFunc("POST /v1/keys/{id}/revoke", a.revoke)
	mux.HandleFunc("POST /v1/keys/{id}/rotate", a.rotate)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	requireAdmin := o.Auth.Require(auth.Policy{Auth: auth.AuthAPIKey, Permission: auth.PermissionAdmin})
	return requireAdmin(mux), nil
}

type api struct {
	m       *Manager
	log     *slog.Logger
	now     func() time.Time
	maxBody int64
}

// actor names the admin key making the request, for created_by and audit.
func actor(r *http.Request) string {
	if info := reqinfo.From(r.Context()); info != nil && info.Principal.ID != "" {
		return "api_key:" + info.Principal.ID
	}
	return "admin_api"
}

// createRequest is the body of POST /v1/keys.
type createRequest struct {
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	ExpiresIn   string     `json:"expires_in,omitempty"` // Go duration, e.g. "720h"
}

// issuedResponse carries a new key. APIKey is the only place a secret ever
// appears, and only in the response that created it.
type issuedResponse struct {
	Key      KeyView  `json:"key"`
	APIKey   string   `json:"api_key"`
	Warning  string   `json:"warning"`
	Previous *KeyView `json:"previous,omitempty"`
}

const onceWarning = "store this key now: it is shown only once and cannot be recovered"

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !a.decode(w, r, &req) {
		return
	}
	perm, err := apikey.ParsePermissions(strings.Join(req.Permissions, ","))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "permissions must be a non-empty list of read, write, admin")
		return
	}
	expires, ok := expiry(w, a.now(), req.ExpiresAt, req.ExpiresIn)
	if !ok {
		return
	}
	iss, err := a.m.Create(r.Context(), CreateParams{Name: req.Name, Permissions: perm, ExpiresAt: expires, CreatedBy: actor(r)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("api key created", "key", iss.Record, "actor", actor(r))
	writeJSON(w, http.StatusCreated, issuedResponse{Key: View(iss.Record, a.now()), APIKey: iss.Key.Reveal(), Warning: onceWarning})
}

func expiry(w http.ResponseWriter, now time.Time, at *time.Time, in string) (time.Time, bool) {
	switch {
	case at != nil && in != "":
		writeError(w, http.StatusBadRequest, "bad_request", "give expires_at or expires_in, not both")
		return time.Time{}, false
	case at != nil:
		return *at, true
	case in != "":
		d, err := time.ParseDuration(in)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "expires_in must be a positive duration such as \"720h\"")
			return time.Time{}, false
		}
		return now.Add(d), true
	}
	return time.Time{}, true
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	recs, err := a.m.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.now()
	views := make([]KeyView, 0, len(recs))
	for _, rec := range recs {
		views = append(views, View(rec, now))
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []KeyView `json:"keys"`
	}{views})
}

func (a *api) show(w http.ResponseWriter, r *http.Request) {
	rec, err := a.m.Show(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(rec, a.now()))
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) {
	rec, err := a.m.Revoke(r.Context(), r.PathValue("id"), actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("api key revoked", "key", rec, "actor", actor(r))
	writeJSON(w, http.StatusOK, View(rec, a.now()))
}

// rotateRequest is the optional body of POST /v1/keys/{id}/rotate.
type rotateRequest struct {
	Grace     string     `json:"grace,omitempty"` // Go duration; default "24h"
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn string     `json:"expires_in,omitempty"`
}

func (a *api) rotate(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if r.ContentLength != 0 && !a.decode(w, r, &req) {
		return
	}
	grace := 24 * time.Hour
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "grace must be a duration such as \"24h\"")
			return
		}
		grace = d
	}
	expires, ok := expiry(w, a.now(), req.ExpiresAt, req.ExpiresIn)
	if !ok {
		return
	}
	iss, old, err := a.m.Rotate(r.Context(), r.PathValue("id"), RotateParams{Grace: grace, ExpiresAt: expires, Actor: actor(r)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("api key rotated", "key", old, "successor", iss.Record, "grace_until", old.GraceUntil, "actor", actor(r))
	prev := View(old, a.now())
	writeJSON(w, http.StatusCreated, issuedResponse{Key: View(iss.Record, a.now()), APIKey: iss.Key.Reveal(), Warning: onceWarning, Previous: &prev})
}

func (a *api) review(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p ReviewParams
	for name, dst := range map[string]*int{"unused_days": &p.UnusedDays, "expiring_days": &p.ExpiringDays} {
		if s := q.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 36500 {
				writeError(w, http.StatusBadRequest, "bad_request", name+" must be a whole number of days")
				return
			}
			*dst = n
		}
	}
	rv, err := a.m.Review(r.Context(), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rv)
}

// decode reads a JSON body strictly: bounded, one object, no unknown fields.
func (a *api) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "body must be a JSON object with known fields")
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad_request", "body must hold exactly one JSON object")
		return false
	}
	return true
}

// fail maps a Manager error to a response. Unexpected errors are logged
// and answered without detail.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, apikey.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no key with this ID")
	case errors.Is(err, apikey.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "the key cannot be changed in its current state (revoked, expired or already rotated)")
	case errors.Is(err, ErrNoKeyring):
		a.log.Error("admin api cannot issue keys without a pepper", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "key issuing is not configured")
	default:
		a.log.Error("admin api request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the key store is unavailable")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
}
