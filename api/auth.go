package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/callbackd/callbackd/config"
)

// Token is one bearer token and what it may do (an http.tokens entry).
type Token struct {
	Name   string
	Secret string
	Roles  []config.Role
}

// Roles is what the holder of a token may do, and whose token it is.
type Roles struct {
	// Name is the token's name (http.tokens[].name; "http.token" for the single token).
	Name  string
	roles []config.Role
}

// Has reports whether the roles include role.
func (r Roles) Has(role config.Role) bool { return slices.Contains(r.roles, role) }

// allRoles is what the single http.token, and everyone when no token is configured (the
// listener is then loopback only, which validation enforces), may do.
func allRoles(name string) Roles { return Roles{Name: name, roles: config.Roles()} }

// Tokens maps a presented bearer token to its roles.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	sum   [sha256.Size]byte
	roles Roles
}

// NewTokens returns the tokens; entries with an empty secret are left out.
func NewTokens(tokens []Token) *Tokens {
	t := &Tokens{}
	for _, tok := range tokens {
		if tok.Secret == "" {
			continue
		}
		t.entries = append(t.entries, tokenEntry{sum: sha256.Sum256([]byte(tok.Secret)),
			roles: Roles{Name: tok.Name, roles: slices.Clone(tok.Roles)}})
	}
	return t
}

// Open reports whether no token is configured: then every request has every role.
func (t *Tokens) Open() bool { return len(t.entries) == 0 }

// Roles returns the roles of token, false when it is no configured token. It takes as long
// whichever token matches, or none: every entry is compared, over digests of equal length,
// so neither the token nor its length can be found by timing.
func (t *Tokens) Roles(token string) (Roles, bool) {
	if token == "" {
		return Roles{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Roles{}, false
	}
	return t.entries[found].roles, true
}

// bearer is the token of an "Authorization: Bearer <token>" header, "" without one.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

type rolesKey struct{}

// rolesOf are the roles the request was authenticated with.
func rolesOf(r *http.Request) Roles {
	roles, _ := r.Context().Value(rolesKey{}).(Roles)
	return roles
}

// rolesFor are the roles of r's token; with no token configured, every role.
func (t *Tokens) rolesFor(r *http.Request) (Roles, bool) {
	if t.Open() {
		return allRoles(""), true
	}
	return t.Roles(bearer(r))
}

// public paths need no token: a liveness or readiness probe cannot send one (and /readyz tells
// a caller without one only its verdict), and the API's description holds no data.
func public(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/api/v1/openapi.json"
}

// authenticate answers 401 to a request without a known token and 403 to one whose token may
// not do what the request asks: below /api/v1 each route says which role it needs; above it,
// reading (GET, HEAD) needs read and anything else write.
func authenticate(tokens *Tokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		roles, ok := tokens.rolesFor(r)
		v1 := strings.HasPrefix(r.URL.Path, v1Prefix+"/")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callbackd"`)
			if v1 {
				writeProblem(w, errUnauthorized)
				return
			}
			http.Error(w, "missing or wrong bearer token (http.token, http.tokens)", http.StatusUnauthorized)
			return
		}
		if !v1 {
			need := config.RoleWrite
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				need = config.RoleRead
			}
			if !roles.Has(need) {
				http.Error(w, "this token lacks the "+string(need)+" role", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rolesKey{}, roles)))
	})
}
